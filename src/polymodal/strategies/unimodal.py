"""Unimodal training: the model sees one modality only, in training and at test time."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models.multimodal import MultimodalModel
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class UnimodalConfig(ComponentConfig):
    modality: str = "image"


@STRATEGIES.register("unimodal", UnimodalConfig)
class UnimodalStrategy(Strategy[MultimodalModel, UnimodalConfig]):
    """Single-modality baseline: every other modality is hidden from the model.

    Args:
        model: the assembled model; it must have an encoder for ``modality``.
        data: the data's description (``classification`` or ``regression``).
        modality: the one modality used.
    """

    @classmethod
    def needs(cls, options: UnimodalConfig) -> Needs:
        return Needs(inputs={options.modality: "strategy.modality"})

    def __init__(self, model: MultimodalModel, data: DataSpec, modality: str) -> None:
        super().__init__(model, data)
        if modality not in model.modalities:
            raise ConfigError(f"strategy.modality: the model has no encoder for {modality!r}")
        self.modality = modality

    def _only(self, present: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: (p if m == self.modality else torch.zeros_like(p)) for m, p in present.items()}

    def predict(self, batch: dict[str, Any]) -> Tensor:
        return self.model(batch["inputs"], self._only(batch["present"]), batch.get("lengths"))

    def encode(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The one modality's features (the others are hidden anyway)."""
        inputs = {m: x for m, x in batch["inputs"].items() if m == self.modality}
        return self.model.encode(inputs, batch.get("lengths"))

    def predict_features(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self.model.fuse(features, self._only(present))

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": self.loss(self.predict(batch), batch["target"])}
