"""Contrastive alignment of paired embeddings: symmetric InfoNCE (CLIP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(query: Tensor, key: Tensor, scale: Tensor, exclude: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over a batch of pairs, where row i of ``query`` and of ``key`` form a pair.

    ``logits = scale * query @ key.T``; the loss is the mean of the cross-entropies of each query against all keys
    and of each key against all queries, with the pair as the positive (InfoNCE, van den Oord et al., arXiv
    1807.03748, eq. 4; symmetric form of CLIP, arXiv 2103.00020, fig. 3). The scale is the inverse temperature; the
    model owns it as a learnable parameter (CLIP's ``logit_scale.exp()``).

    Args:
        query: (B, D) embeddings, usually L2-normalised.
        key: (B, D) embeddings of the paired items.
        scale: scalar inverse temperature.
        exclude: optional (B, B) bool, True where an off-diagonal pair must not count as a negative (e.g. a known
            duplicate); the diagonal is always kept.

    Returns:
        Scalar loss.
    """
    logits = scale * query.float() @ key.float().T  # (B, B)
    if exclude is not None:
        exclude = exclude & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(exclude, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
