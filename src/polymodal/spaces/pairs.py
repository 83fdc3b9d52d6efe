"""Ex-MCR pseudo-pairs between two contrastive spaces, from their unpaired memory banks (arXiv 2310.08884).

Each space embeds its own unpaired modality-centric data into memory banks (:mod:`polymodal.spaces.banks`), and
:func:`pseudo_pairs` links the banks through the overlapping modality; :class:`PseudoPairDataset` serves the tuples to
the ``bridge`` strategy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from polymodal.objectives import aggregate
from polymodal.spaces.base import BASE, LEAF


def pseudo_pairs(
    base: Mapping[str, Tensor], leaf: Mapping[str, Tensor], overlap: str, temperature: float, rotate: bool = True
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
        rotate: every bank in turn is the query (Ex-MCR); False: only the overlapping modality's bank (C-MCR).

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
    queries = [(BASE, overlap)] + [(s, m) for s in (BASE, LEAF) for m in banks[s] if m != overlap and rotate]
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
