"""Classification loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy.

    Args:
        logits: (B, C) unnormalised scores.
        target: (B,) class indices.
        label_smoothing: mass spread uniformly over classes.

    Returns:
        Scalar loss.
    """
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
