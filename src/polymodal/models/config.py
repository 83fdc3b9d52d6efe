"""The recipe's ``model`` section: the architecture and its component specs (free of torch)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from polymodal.data.vocab import check_modality
from polymodal.registry import ComponentConfig


class ModelConfig(ComponentConfig):
    """Component specs (each a mapping with ``name``), validated against the registries.

    ``name`` picks the architecture (``models.ARCHITECTURES``); ``options`` are its own settings. The default,
    ``multimodal``, takes no options and is assembled from ``encoders``, ``fusion`` and ``head``.
    """

    name: str = "multimodal"
    options: dict[str, Any] = {}
    encoders: dict[str, dict[str, Any]] = {}
    fusion: dict[str, Any] = {"name": "concat"}
    head: dict[str, Any] = {"name": "mlp"}
    # Optional per-modality parts of multi-task strategies (self_mi): a head spec for each modality's own output,
    # and a head spec that predicts each modality's feature from the fused representation.
    unimodal_head: dict[str, Any] | None = None
    predictor: dict[str, Any] | None = None

    @field_validator("encoders")
    @classmethod
    def _known_modalities(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in value:
            check_modality(name, "model.encoders")
        return value

    @model_validator(mode="after")
    def _encoders_for_multimodal(self) -> ModelConfig:
        if self.name == "multimodal" and not self.encoders:
            raise ValueError("model.encoders: at least one encoder is needed")
        if self.name != "multimodal" and self.encoders:
            raise ValueError(f"model.encoders: not used by the {self.name!r} architecture (use model.options)")
        return self
