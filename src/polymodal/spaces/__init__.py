"""Contrastive spaces, the library below bridge runs: the :class:`ContrastiveSpace` interface, a trained model's space
(:class:`ModelSpace`), pretrained spaces from local weights, memory banks, Ex-MCR pseudo-pairs and the unified space
a bridge builds (:class:`UnifiedSpace`).

Nothing here reads or writes run directories: :mod:`polymodal.runs.bridge` trains bridges and loads the spaces of
finished runs (``load_space``, ``load_unified_space``).
"""

from polymodal.spaces.banks import bank_modalities, embed_batches, embed_split, memory_bank, memory_banks
from polymodal.spaces.base import BASE, LEAF, SIDES, ContrastiveSpace, ModelSpace, UnifiedSpace, unified_modalities
from polymodal.spaces.pairs import PseudoPairDataset, pseudo_pairs
from polymodal.spaces.pretrained import ClapSpace, HFClipSpace, OpenClipSpace, load_pretrained_space

__all__ = [
    "BASE",
    "LEAF",
    "SIDES",
    "ClapSpace",
    "ContrastiveSpace",
    "HFClipSpace",
    "ModelSpace",
    "OpenClipSpace",
    "PseudoPairDataset",
    "UnifiedSpace",
    "bank_modalities",
    "embed_batches",
    "embed_split",
    "load_pretrained_space",
    "memory_bank",
    "memory_banks",
    "pseudo_pairs",
    "unified_modalities",
]
