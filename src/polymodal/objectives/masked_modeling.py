"""Masked modeling: reconstruct hidden image patches (SimMIM) and predict hidden text tokens (BERT)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def masked_patch_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the pixels of masked patches only.

    SimMIM (Xie et al., arXiv 2111.09886, sec. 3.3) regresses the raw pixels of masked patches with an l1 loss
    computed on masked patches only; MoMo (arXiv 2304.05523) pre-trains its shared encoder on images with
    masked image modeling. A squared error is used here, as in MAE (arXiv 2111.06377, sec. 3).

    Args:
        prediction: predicted pixels per patch, (B, P, K).
        target: true pixels per patch, (B, P, K).
        mask: True where the patch was hidden from the encoder, (B, P).

    Returns:
        Scalar: the mean of ``(prediction - target) ** 2`` over the K pixels of every masked patch; 0 if none is.
    """
    per_patch = (prediction.float() - target.float()).pow(2).mean(-1)  # (B, P)
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum().clamp(min=1.0)


def masked_token_loss(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy of the true token at masked positions only (BERT's masked LM, arXiv 1810.04805, sec. 3.1).

    Args:
        logits: token scores, (B, L, V).
        target: true token ids, (B, L).
        mask: True where the token was hidden from the encoder, (B, L).

    Returns:
        Scalar: the mean negative log-likelihood over masked positions; 0 if none is masked.
    """
    nll = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")  # (B, L)
    weights = mask.to(nll.dtype)
    return (nll * weights).sum() / weights.sum().clamp(min=1.0)
