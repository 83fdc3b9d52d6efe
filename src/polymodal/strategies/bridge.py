"""Bridge training (Ex-MCR): a projector from a frozen leaf space into a frozen base space, on pseudo-pairs."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import Tensor, nn

from polymodal.errors import ConfigError
from polymodal.models.bridge import BridgeProjector
from polymodal.objectives import dense_alignment_loss
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Strategy


class BridgeConfig(ComponentConfig):
    intra_weight: float = Field(1.0, ge=0)
    # leaf modality -> base modality -> weight of that InfoNCE term; a pair not listed weighs 1.
    weights: dict[str, dict[str, float]] = Field(default_factory=dict)


@STRATEGIES.register("bridge", BridgeConfig)
class BridgeStrategy(Strategy):
    """Trains only the leaf-to-base projector of Ex-MCR (arXiv 2310.08884) with the dense alignment loss.

    Both spaces stay frozen by construction: a batch holds their precomputed embeddings of pseudo-pair tuples (see
    ``polymodal.spaces.pseudo_pairs``), so the projector is the only module with parameters, the only thing in the
    optimizer and in checkpoints. The base space's own retrieval is therefore unchanged bit for bit.

    A batch is ``{"base": {modality: (B, D_base)}, "leaf": {modality: (B, D_leaf)}}``, row i of every tensor being
    one pseudo-pair tuple.

    Args:
        model: the projector.
        task: unused (the bridge has no targets); kept for the strategy contract.
        intra_weight: weight of the intra-space InfoNCE between the leaf modalities.
        weights: leaf modality -> base modality -> weight of that inter-space InfoNCE term (default 1).
    """

    def __init__(self, model: nn.Module, task: str, intra_weight: float, weights: dict[str, dict[str, float]]) -> None:
        if not isinstance(model, BridgeProjector):
            raise ConfigError(f"strategy.name: bridge trains a BridgeProjector, not a {type(model).__name__}")
        super().__init__(model, task)
        self.intra_weight = intra_weight
        self.weights = {(leaf, base): w for leaf, row in weights.items() for base, w in row.items()}

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        leaf = batch["leaf"]
        projected = {m: self.model(x) for m, x in leaf.items()}
        intra = {m: self.model.intra_space(x) for m, x in leaf.items()}
        scale = self.model.scale()
        loss = dense_alignment_loss(projected, batch["base"], scale, intra, self.weights, self.intra_weight)
        return {"loss": loss, "scale": scale.detach()}
