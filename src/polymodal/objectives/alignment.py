"""Aligning two pretrained contrastive spaces without paired data (Ex-MCR): memory aggregation and dense alignment."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import torch
from torch import Tensor

from polymodal.objectives.contrastive import info_nce


def aggregate(query: Tensor, keys: Tensor, temperature: float, values: Tensor | None = None) -> Tensor:
    """Softmax-weighted sum of a memory bank around each query.

    ``agg(q, K) = sum_k softmax_k(q . k / tau) v_k`` with ``v = k`` by default (Ex-MCR, arXiv 2310.08884, Sec. 3.2,
    after C-MCR's semantic enhancement, arXiv 2305.14381). ``values`` row-aligned with ``keys`` but embedded in the
    other space (the overlapping modality seen by both spaces' encoders) carries the retrieval across spaces: the
    weights come from one space and the weighted embeddings from the other.

    Args:
        query: (B, D) embeddings, usually L2-normalised.
        keys: (K, D) memory bank in the query's space.
        temperature: softmax temperature ``tau`` (small: close to nearest-neighbour retrieval).
        values: optional (K, D') bank row-aligned with ``keys``; defaults to ``keys``.

    Returns:
        (B, D') aggregated embeddings (not re-normalised).
    """
    weights = torch.softmax(query.float() @ keys.float().T / temperature, dim=-1)  # (B, K)
    return weights @ (keys if values is None else values).float()


def dense_alignment_loss(
    projected: Mapping[str, Tensor],
    base: Mapping[str, Tensor],
    scale: Tensor,
    intra: Mapping[str, Tensor] | None = None,
    weights: Mapping[tuple[str, str], float] | None = None,
    intra_weight: float = 1.0,
) -> Tensor:
    """Dense inter-space alignment plus the intra-space term of Ex-MCR (arXiv 2310.08884, Sec. 3.3-3.4).

    With pseudo-pair tuples (row i of every tensor describes the same pseudo-sample),
    ``L = sum_{l, b} w_{l,b} NCE(f(x_l), y_b) + lambda sum_{l < l'} NCE(g(x_l), g(x_l'))``, where ``f(x_l)`` are the
    leaf modalities projected into the base space, ``y_b`` the frozen base embeddings, ``g`` the projector's
    intra-space (linear) part and NCE the symmetric InfoNCE of :func:`info_nce`. Every leaf-base pair counts, not only
    the overlapping modality (the paper's "dense" alignment).

    Args:
        projected: leaf modality -> (B, D) projected leaf embeddings, L2-normalised.
        base: base modality -> (B, D) base embeddings, L2-normalised.
        scale: scalar inverse temperature of the InfoNCE terms.
        intra: optional leaf modality -> (B, D_leaf) outputs of the intra-space part; at least two for the term to
            count.
        weights: optional ``(leaf, base) -> weight``; a missing pair weighs 1.
        intra_weight: ``lambda``, weight of the intra-space term.

    Returns:
        Scalar loss.
    """
    weights, intra = weights or {}, intra or {}
    terms = [
        weights.get((leaf, modality), 1.0) * info_nce(x, y, scale)
        for leaf, x in projected.items()
        for modality, y in base.items()
    ]
    terms += [intra_weight * info_nce(intra[a], intra[b], scale) for a, b in combinations(sorted(intra), 2)]
    return torch.stack(terms).sum()
