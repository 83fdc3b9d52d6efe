"""Memory banks: the embeddings of a dataset's samples in a contrastive space, as Ex-MCR's pseudo-pairs need them.

A bridge embeds each bank modality from its own disjoint part of a split (:func:`memory_banks`), so no two banks hold
the same sample and no cross-space pair is ever used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from polymodal.data.sources import DataBundle
from polymodal.data.splits import part_indices, subset_indices
from polymodal.errors import ConfigError
from polymodal.spaces.base import SIDES, ContrastiveSpace


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
    return embed_batches(space, modality, batches)[0]


def embed_batches(
    space: ContrastiveSpace, modality: str, batches: Iterable[dict[str, Any]], cells: dict[str, list[str]] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(N, D) embeddings, (N,) targets and (N,) sample indices of the samples of ``batches`` that have ``modality``.

    A space that takes polymodal's tensors embeds the collated inputs; any other space (pretrained weights with
    their own preprocessing) embeds the raw ``cells`` of the samples (a CSV manifest's, by sample index).
    """
    tensors = space.takes_tensors(modality)
    if not tensors and cells is None:
        raise ConfigError("data: a pretrained space embeds raw files, so its data must be a CSV manifest")
    parts, targets, indices = [], [], []
    for batch in batches:
        keep = batch["present"][modality]
        index = torch.as_tensor(batch["index"])[keep]
        if tensors:
            lengths = batch.get("lengths", {}).get(modality)
            parts.append(space.embed(modality, batch["inputs"][modality], lengths).cpu()[keep.cpu()])
        elif cells is not None and len(index):
            parts.append(space.embed_items(modality, [cells[modality][int(i)] for i in index]).cpu())
        targets.append(torch.as_tensor(batch["target"])[keep])
        indices.append(index)
    return torch.cat(parts), torch.cat(targets), torch.cat(indices)


def bank_modalities(spaces: dict[str, ContrastiveSpace], overlap: str) -> dict[str, list[str]]:
    """side -> the modalities it embeds into memory banks (the overlapping one first)."""
    return {side: [overlap, *(m for m in spaces[side].modalities if m != overlap)] for side in SIDES}


def memory_banks(
    spaces: dict[str, ContrastiveSpace], overlap: str, split: Any, bundle: DataBundle, batch_size: int, size: int | None
) -> dict[str, dict[str, Tensor]]:
    """Memory banks of one split: each bank modality embeds its own disjoint part of the split.

    The overlapping modality's part is embedded by both spaces (row-aligned banks); every other modality by its own
    space. Parts are disjoint, so no bank row shares a sample with a row of another modality's bank: the banks are
    unpaired, as when each space's data comes from a different source.
    """
    modalities = bank_modalities(spaces, overlap)
    order = [overlap, *(m for side in SIDES for m in modalities[side][1:])]
    banks: dict[str, dict[str, Tensor]] = {side: {} for side in SIDES}
    for k, m in enumerate(order):
        rows = part_indices(len(split), k, len(order))
        if size and len(rows) > size:
            rows = [rows[i] for i in subset_indices(len(rows), size, 0)]
        loader = DataLoader(Subset(split, rows), batch_size=batch_size, collate_fn=bundle.collate())
        for side in SIDES:
            if m in spaces[side].modalities:
                banks[side][m] = _embed_present(spaces[side], m, loader)[0]
    return banks


def _raw_cells(dataset: Any) -> dict[str, list[str]] | None:
    """The raw cells of the dataset under any ``Subset`` wrappers (a CSV manifest's), or None."""
    while not hasattr(dataset, "cells") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return getattr(dataset, "cells", None)


def _embed_present(space: ContrastiveSpace, modality: str, loader: DataLoader) -> tuple[Tensor, Tensor, Tensor]:
    return embed_batches(space, modality, loader, _raw_cells(loader.dataset))


def embed_split(
    space: ContrastiveSpace, modalities: list[str], split: Any, bundle: DataBundle, batch_size: int
) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """modality -> (embeddings, targets, sample indices) of a whole split."""
    loader = DataLoader(split, batch_size=batch_size, collate_fn=bundle.collate())
    return {m: _embed_present(space, m, loader) for m in modalities}
