"""Contrastive predictive coding between a fused representation and each unimodal representation (MMIM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cpc_loss(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """InfoNCE over the batch between predicted and actual unimodal representations (MMIM, Eqs. 9-10).

    Han et al., "Improving Multimodal Fusion with Hierarchical Mutual Information Maximization for Multimodal
    Sentiment Analysis", EMNLP 2021 (arXiv 2109.00412). Both sides are L2-normalised; sample i's target is scored
    against every prediction j of the batch, and the loss is ``-mean_i [s_ii - logsumexp_j s_ij]`` with
    ``s_ij = <target_i, prediction_j>`` (temperature 1, as in the official code). Unlike the symmetric CLIP form in
    ``contrastive.info_nce``, only the modality side is scored against the batch, as MMIM does.

    Args:
        prediction: (B, D) the fused representation mapped into the modality's space by a prediction network.
        target: (B, D) the modality's representation.
        mask: optional (B,) bool; samples where the modality is missing are left out of both sides.

    Returns:
        Scalar loss; zero when fewer than two samples remain.
    """
    if mask is not None:
        prediction, target = prediction[mask], target[mask]
    if prediction.shape[0] < 2:
        return prediction.new_zeros((), dtype=torch.float32)
    prediction = F.normalize(prediction.float(), dim=-1)
    target = F.normalize(target.float(), dim=-1)
    scores = target @ prediction.T  # (B, B)
    return -(scores.diagonal() - scores.logsumexp(dim=-1)).mean()
