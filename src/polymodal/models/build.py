"""Builds a MultimodalModel from a validated model config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polymodal.errors import ConfigError
from polymodal.models.encoders import ENCODERS
from polymodal.models.fusion import FUSIONS
from polymodal.models.heads import HEADS
from polymodal.models.multimodal import MultimodalModel


def build_model(config: Any, shapes: Mapping[str, tuple[int, ...]], out_dim: int) -> MultimodalModel:
    """Builds encoders for the configured modalities, the fusion and the head.

    Args:
        config: a ``ModelConfig`` (``encoders``: modality -> spec, ``fusion`` and ``head`` specs).
        shapes: modality -> shape of one sample (per step for sequences), from the dataset.
        out_dim: number of classes, or 1 for regression.
    """
    encoders = {}
    for modality, spec in config.encoders.items():
        if modality not in shapes:
            raise ConfigError(
                f"model.encoders.{modality}: the data has no {modality!r} modality (it has: {', '.join(shapes)})"
            )
        encoders[modality] = ENCODERS.build(spec, input_shape=tuple(shapes[modality]))
    fusion = FUSIONS.build(config.fusion, dims={m: e.out_dim for m, e in encoders.items()})
    head = HEADS.build(config.head, in_dim=fusion.out_dim, out_dim=out_dim)
    return MultimodalModel(encoders, fusion, head)
