"""Regression losses."""

from __future__ import annotations

from torch import Tensor


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error. Args: prediction (B,) or (B, 1); target (B,). Returns a scalar."""
    return (prediction.float().reshape(-1) - target.float().reshape(-1)).pow(2).mean()


def l1_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error (the loss MMSA uses for sentiment). Args and returns as ``mse_loss``."""
    return (prediction.float().reshape(-1) - target.float().reshape(-1)).abs().mean()
