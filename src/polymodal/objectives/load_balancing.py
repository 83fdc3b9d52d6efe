"""Mixture-of-experts balancing loss on importance and load (Shazeer et al. 2017, arXiv 1701.06538, eq. 6-11)."""

from __future__ import annotations

from torch import Tensor


def cv_squared(values: Tensor, eps: float = 1e-10) -> Tensor:
    """Squared coefficient of variation ``Var(v) / Mean(v)^2`` of a (E,) vector (population variance).

    The population variance follows the paper's reference code (``tf.nn.moments``); a single expert gives 0.
    """
    if values.numel() <= 1:
        return values.new_zeros(())
    values = values.float()
    return values.var(unbiased=False) / (values.mean() ** 2 + eps)


def load_balancing_loss(importance: Tensor, load: Tensor, importance_weight: float, load_weight: float) -> Tensor:
    """``w_importance * CV(importance)^2 + w_load * CV(load)^2`` (eq. 7 and 11).

    Args:
        importance: (E,) sum of each expert's gate values over a batch.
        load: (E,) (smooth) number of tokens sent to each expert.
        importance_weight: ``w_importance``.
        load_weight: ``w_load``.

    Returns:
        Scalar loss.
    """
    return importance_weight * cv_squared(importance) + load_weight * cv_squared(load)
