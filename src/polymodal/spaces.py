"""Pretrained contrastive spaces, their memory banks, and Ex-MCR pseudo-pairs between two spaces.

A contrastive space embeds each of its modalities into one L2-normalised space. Ex-MCR (arXiv 2310.08884) extends a
frozen *base* space with a *leaf* space that shares one *overlapping* modality with it (e.g. image-text base and
audio-text leaf, overlapping through text), using no pair across the two spaces: each space embeds its own unpaired
modality-centric data into memory banks, and :func:`pseudo_pairs` links the banks through the overlapping modality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from polymodal.objectives import aggregate
from polymodal.runs import load_run

BASE, LEAF = "base", "leaf"


class ContrastiveSpace:
    """A frozen pretrained contrastive space: one encoder per modality into one normalised embedding space.

    Implementations hold their own weights and never expose them to an optimizer; ``embed`` runs without gradients.
    """

    @property
    def modalities(self) -> list[str]:
        """The modalities the space can embed."""
        raise NotImplementedError

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality -> (B, D) L2-normalised embeddings."""
        raise NotImplementedError


class ModelSpace(ContrastiveSpace):
    """A contrastive space over any model with ``encode(inputs, lengths) -> {modality: (B, D)}`` (polymodal models).

    The model is put in eval mode and its parameters stop requiring gradients, so neither dropout nor batch-norm
    statistics nor an optimizer can change it: embeddings are reproducible bit for bit. This is a plain object, not
    an ``nn.Module``, so the space's weights never become part of a strategy's model or checkpoint.

    Args:
        model: a trained model; its per-modality features must share one width (a contrastively trained model).
        device: where the model runs.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    @property
    def modalities(self) -> list[str]:
        return list(self.model.modalities)

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality -> (B, D) L2-normalised float32 embeddings."""
        if modality not in self.modalities:
            raise ValueError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")
        lengths_by_modality = {} if lengths is None else {modality: lengths.to(self.device)}
        with torch.no_grad():
            features = self.model.encode({modality: inputs.to(self.device)}, lengths_by_modality)[modality]
        return F.normalize(features.float(), dim=-1)


def load_space(run_dir: Path, device: torch.device | str = "cpu") -> ModelSpace:
    """The contrastive space of a finished polymodal run (its best weights), frozen."""
    _, _, strategy = load_run(run_dir)
    return ModelSpace(strategy.model, device)


def memory_bank(space: ContrastiveSpace, modality: str, batches: Iterable[dict[str, Any]]) -> Tensor:
    """Embeds every sample of ``batches`` that has ``modality`` present into an (N, D) memory bank.

    Args:
        space: the space whose encoder embeds the modality.
        modality: the modality to embed.
        batches: polymodal batches (``inputs``, ``present``, ``lengths``), e.g. a ``DataLoader`` with ``Collate``.
            For the overlapping modality, both spaces must read the same items in the same order, so that row i of
            the two banks embeds the same item.

    Returns:
        (N, D) L2-normalised embeddings, in the order of the batches.
    """
    parts = []
    for batch in batches:
        keep = batch["present"][modality]
        lengths = batch.get("lengths", {}).get(modality)
        embedded = space.embed(modality, batch["inputs"][modality], lengths)
        parts.append(embedded[keep.to(embedded.device)])
    return torch.cat(parts)


def pseudo_pairs(
    base: Mapping[str, Tensor], leaf: Mapping[str, Tensor], overlap: str, temperature: float
) -> dict[str, dict[str, Tensor]]:
    """Pseudo-pair tuples across a base and a leaf space from unpaired memory banks (Ex-MCR, Sec. 3.2).

    Every bank in turn is the query (the paper's rotation over modality-centric data): each of its rows starts one
    tuple. A query of the overlapping modality has its own embedding in both spaces (row-aligned banks). Any other
    query retrieves the overlapping modality in its own space, ``o = agg(x, O_own)``, and the softmax weights of that
    retrieval, applied to the other space's row-aligned overlap bank, give ``o`` in the other space. Every remaining
    modality ``m`` of a space is then ``agg(o, M)`` in that space. Aggregated embeddings are re-normalised.

    Args:
        base: base modality -> (N_m, D_base) L2-normalised memory bank.
        leaf: leaf modality -> (N_m, D_leaf) L2-normalised memory bank.
        overlap: the modality both spaces have; ``base[overlap]`` and ``leaf[overlap]`` embed the same items, row by
            row.
        temperature: ``tau`` of :func:`~polymodal.objectives.aggregate`.

    Returns:
        ``{"base": {modality: (N, D_base)}, "leaf": {modality: (N, D_leaf)}}`` where row i of every tensor belongs to
        tuple i. Tuples are ordered by query bank: the overlapping modality first, then the base's other modalities,
        then the leaf's, each in its mapping's order.
    """
    if len(base[overlap]) != len(leaf[overlap]):
        raise ValueError(
            f"the {overlap} banks must embed the same items: "
            f"{len(base[overlap])} rows in base, {len(leaf[overlap])} in leaf"
        )
    banks = {BASE: base, LEAF: leaf}
    queries = [(BASE, overlap)] + [(s, m) for s in (BASE, LEAF) for m in banks[s] if m != overlap]
    tuples = [_tuples(banks, space, modality, overlap, temperature) for space, modality in queries]
    return {s: {m: torch.cat([t[s][m] for t in tuples]) for m in banks[s]} for s in (BASE, LEAF)}


def _tuples(
    banks: dict[str, Mapping[str, Tensor]], space: str, modality: str, overlap: str, temperature: float
) -> dict[str, dict[str, Tensor]]:
    """The tuples whose query is every row of ``banks[space][modality]``."""
    query = banks[space][modality]
    other = LEAF if space == BASE else BASE
    if modality == overlap:
        anchor = {s: banks[s][overlap] for s in banks}
    else:
        own_overlap = banks[space][overlap]
        anchor = {
            space: F.normalize(aggregate(query, own_overlap, temperature), dim=-1),
            other: F.normalize(aggregate(query, own_overlap, temperature, banks[other][overlap]), dim=-1),
        }
    out: dict[str, dict[str, Tensor]] = {}
    for s, bank in banks.items():
        out[s] = {overlap: anchor[s]}
        for m, keys in bank.items():
            if m == overlap:
                continue
            out[s][m] = (
                query if (s, m) == (space, modality) else F.normalize(aggregate(anchor[s], keys, temperature), dim=-1)
            )
    return out


class PseudoPairDataset(Dataset):
    """The tuples of :func:`pseudo_pairs` as a dataset for the Trainer and the ``bridge`` strategy.

    Item i is ``{"base": {modality: (D_base,)}, "leaf": {modality: (D_leaf,)}}``; ``default_collate`` stacks items
    into the strategy's batch format.

    Args:
        pairs: the output of :func:`pseudo_pairs`.
    """

    def __init__(self, pairs: Mapping[str, Mapping[str, Tensor]]) -> None:
        self.pairs = {s: dict(banks) for s, banks in pairs.items()}
        self.size = len(next(iter(self.pairs[BASE].values())))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, dict[str, Tensor]]:
        return {s: {m: x[index] for m, x in banks.items()} for s, banks in self.pairs.items()}
