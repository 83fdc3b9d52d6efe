"""Ex-MCR's leaf-to-base projector: maps a frozen leaf contrastive space into a frozen base space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BridgeProjector(nn.Module):
    """Decoupled projector of Ex-MCR (arXiv 2310.08884, Sec. 3.3), shared by every modality of the leaf space.

    ``f(x) = normalise(MLP(W x + b))``: the intra-space part ``W x + b`` is a square linear map initialised to the
    identity, so training starts from the leaf space's own geometry and the intra-space loss only has to close its
    modality gap; the inter-space part is a two-layer MLP into the base space's width. The output is L2-normalised
    like the base embeddings it is compared with. The InfoNCE inverse temperature is learnable and lives here
    (``logit_scale``, CLIP's parametrisation) because objectives own no parameters.

    Args:
        leaf_dim: width of the leaf space's embeddings.
        base_dim: width of the base space's embeddings.
        hidden: hidden width of the inter-space MLP.
        temperature: initial InfoNCE temperature (``scale = 1 / temperature``); ``None`` for a projector without
            its own temperature (one part of :class:`CMCRProjector`).
    """

    def __init__(self, leaf_dim: int, base_dim: int, hidden: int, temperature: float | None) -> None:
        super().__init__()
        self.intra = nn.Linear(leaf_dim, leaf_dim)
        with torch.no_grad():
            self.intra.weight.copy_(torch.eye(leaf_dim))
            self.intra.bias.zero_()
        self.inter = nn.Sequential(nn.Linear(leaf_dim, hidden), nn.GELU(), nn.Linear(hidden, base_dim))
        if temperature is not None:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def intra_space(self, x: Tensor) -> Tensor:
        """(B, D_leaf) leaf embeddings -> (B, D_leaf) L2-normalised output of the intra-space part."""
        return F.normalize(self.intra(x), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, D_leaf) leaf embeddings -> (B, D_base) L2-normalised embeddings in the base space."""
        return F.normalize(self.inter(self.intra(x)), dim=-1)

    def scale(self) -> Tensor:
        """Scalar InfoNCE inverse temperature."""
        return self.logit_scale.exp()


class CMCRProjector(nn.Module):
    """C-MCR-style baseline (arXiv 2305.14381): both spaces re-projected into a new shared space.

    Unlike Ex-MCR, neither space is kept: the base space's embeddings go through a projector too, so the base space's
    own retrieval changes. Each side is a :class:`BridgeProjector` (identity-initialised linear part, then an MLP)
    into ``dim``; one learnable InfoNCE temperature is shared.

    Args:
        base_dim: width of the base space's embeddings.
        leaf_dim: width of the leaf space's embeddings.
        dim: width of the new shared space.
        hidden: hidden width of each projector's MLP.
        temperature: initial InfoNCE temperature.
    """

    def __init__(self, base_dim: int, leaf_dim: int, dim: int, hidden: int, temperature: float) -> None:
        super().__init__()
        self.base = BridgeProjector(base_dim, dim, hidden, None)
        self.leaf = BridgeProjector(leaf_dim, dim, hidden, None)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, D_leaf) leaf embeddings -> (B, dim) L2-normalised embeddings in the new space."""
        return self.leaf(x)

    def scale(self) -> Tensor:
        """Scalar InfoNCE inverse temperature."""
        return self.logit_scale.exp()
