"""Self-MM's unimodal label generation (ULGM) as tensor functions: relative distances, the label rule, smoothing.

Yu et al., "Learning Modality-Specific Representations with Self-Supervised Multi-Task Learning for Multimodal
Sentiment Analysis", AAAI 2021 (arXiv 2102.04830), Section 3.3, Eqs. 5-12. The centres and label memories these
functions read are kept by the ``self_mi`` strategy.
"""

from __future__ import annotations

from torch import Tensor

# Self-MM's ``MIN`` guard against a sample sitting exactly on its positive centre.
EPS = 1e-8


def relative_distance(feature: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """How much closer each feature is to the positive than to the negative class centre (Self-MM Eq. 7).

    Args:
        feature: (B, D) representations.
        positive: (D,) centre of the samples with a positive label.
        negative: (D,) centre of the samples with a negative label.

    Returns:
        (B,) ``(|f - negative| - |f - positive|) / (|f - positive| + eps)``.
    """
    d_pos = (feature.float() - positive.float()).norm(dim=-1)
    d_neg = (feature.float() - negative.float()).norm(dim=-1)
    return (d_neg - d_pos) / (d_pos + EPS)


def unimodal_labels(fused_label: Tensor, fused_delta: Tensor, unimodal_delta: Tensor, bound: float) -> Tensor:
    """The distance-ratio rule: a unimodal label from the fused label and both relative distances (Eqs. 8-11).

    The rule averages the ratio form ``y_s = y_m * delta_s / delta_m`` and the difference form
    ``y_s = y_m + delta_s - delta_m``, then clips to the label range, as Self-MM's official code does.

    Args:
        fused_label: (B,) current fused (multimodal) labels.
        fused_delta: (B,) ``relative_distance`` of the fused representations.
        unimodal_delta: (B,) ``relative_distance`` of one modality's representations.
        bound: labels are clipped to ``[-bound, bound]`` (3 for CMU-MOSI).

    Returns:
        (B,) new unimodal labels.
    """
    alpha = unimodal_delta / (fused_delta + EPS)
    label = 0.5 * alpha * fused_label + 0.5 * (fused_label + unimodal_delta - fused_delta)
    return label.clamp(-bound, bound)


def smooth_labels(previous: Tensor, new: Tensor, epoch: int) -> Tensor:
    """Epoch-wise momentum smoothing of generated labels (Eq. 12): ``(n-1)/(n+1) * previous + 2/(n+1) * new``.

    Args:
        previous: (B,) labels kept from earlier epochs.
        new: (B,) labels generated in this epoch.
        epoch: the 1-based epoch n; n = 1 keeps ``new`` alone.

    Returns:
        (B,) smoothed labels.
    """
    return (epoch - 1) / (epoch + 1) * previous + 2 / (epoch + 1) * new
