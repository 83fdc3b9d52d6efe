"""Orthogonal gradient projection (OWM, Zeng et al. 2019, arXiv 1810.01256), as MLA uses it on its shared head."""

from __future__ import annotations

import torch
from torch import Tensor


def update_projector(projector: Tensor, feature: Tensor, alpha: float) -> Tensor:
    """One recursive-least-squares update of the projector with a new input direction.

    ``k = P x / (alpha + x^T P x)``, ``P <- P - k x^T P`` (OWM eq. 8; MLA arXiv 2311.10707, eq. 6 with the batch
    mean feature as ``x``). As ``alpha -> 0`` the new ``P`` maps ``x`` to zero, so a gradient projected by it no
    longer changes the layer's output on ``x``.

    Args:
        projector: P, (D, D), symmetric; the identity before any update.
        feature: x, (D,), e.g. the mean input of the layer over a batch.
        alpha: regulariser > 0; small values make the projection nearly exact.

    Returns:
        The updated projector (D, D).
    """
    px = projector @ feature
    k = px / (alpha + feature @ px)
    return projector - torch.outer(k, px)


def project_gradient(grad: Tensor, projector: Tensor) -> Tensor:
    """Projects a linear layer's weight gradient onto the input directions the projector keeps.

    Args:
        grad: gradient of a weight W used as ``W x``, (C, D).
        projector: P, (D, D), symmetric.

    Returns:
        ``grad @ P``, (C, D): the update it gives changes ``W x`` only along what P keeps.
    """
    return grad @ projector
