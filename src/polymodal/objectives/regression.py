"""Regression losses."""

from __future__ import annotations

from torch import Tensor


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error. Args: prediction (B,) or (B, 1); target (B,). Returns a scalar."""
    return (prediction.float().reshape(-1) - target.float().reshape(-1)).pow(2).mean()


def l1_loss(prediction: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean absolute error (the loss MMSA uses for sentiment), optionally weighted per sample.

    Args:
        prediction: (B,) or (B, 1) outputs.
        target: (B,) labels.
        weight: optional (B,) per-sample weights, e.g. Self-MM's ``tanh(|y_s - y_m|)`` (arXiv 2102.04830, Eq. 13).

    Returns:
        Scalar mean of ``weight * |prediction - target|``.
    """
    error = (prediction.float().reshape(-1) - target.float().reshape(-1)).abs()
    return (error * weight.float().reshape(-1)).mean() if weight is not None else error.mean()
