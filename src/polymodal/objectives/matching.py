"""Image-text matching: binary classification of pairs, with hard negatives drawn by similarity (ALBEF)."""

from __future__ import annotations

import torch
from torch import Tensor


def hard_negatives(
    similarity: Tensor, exclude: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """For each row, one column drawn with probability ``softmax(similarity)`` over its allowed columns.

    ALBEF (Li et al., arXiv 2107.07651, sec. 3.2) samples each image's negative text (and each text's negative
    image) in proportion to their contrastive similarity, so the negatives are hard; the positive (diagonal) is
    never drawn.

    Args:
        similarity: (B, B) scores of row items against column items; the diagonal holds the pairs.
        exclude: optional (B, B) bool, True where a column must not be drawn for that row (e.g. a true match).
        generator: random generator for the draw.

    Returns:
        (B,) long column index of each row's negative. A row with no allowed column gets its own index (the caller
        can drop such rows).
    """
    b = similarity.shape[0]
    banned = torch.eye(b, dtype=torch.bool, device=similarity.device)
    if exclude is not None:
        banned = banned | exclude
    weights = torch.softmax(similarity.detach().float().masked_fill(banned, float("-inf")), dim=1)
    empty = banned.all(dim=1)
    weights = torch.where(empty[:, None], torch.eye(b, device=similarity.device), weights.nan_to_num(0.0))
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)
