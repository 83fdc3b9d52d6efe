"""Builds the architecture a validated model config names: ``multimodal`` (default), ``momo`` or ``multimodel``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field
from torch import nn

from polymodal.errors import ConfigError
from polymodal.models.encoders import ENCODERS
from polymodal.models.fusion import FUSIONS
from polymodal.models.heads import HEADS
from polymodal.models.multimodal import MultimodalModel
from polymodal.models.multimodel import MultiModel
from polymodal.models.stream import MoMoModel, StreamEncoder
from polymodal.registry import ComponentConfig, Registry

ARCHITECTURES = Registry("architecture")


def build_model(config: Any, shapes: Mapping[str, tuple[int, ...]], out_dim: int) -> nn.Module:
    """Builds the architecture ``config.name`` with its ``config.options``.

    Args:
        config: a ``ModelConfig``.
        shapes: modality -> shape of one sample (per step for sequences), from the dataset.
        out_dim: number of classes, or 1 for regression.
    """
    spec = {"name": config.name, **config.options}
    return ARCHITECTURES.build(spec, config=config, shapes=shapes, out_dim=out_dim)


@ARCHITECTURES.register("multimodal", ComponentConfig)
def build_multimodal(config: Any, shapes: Mapping[str, tuple[int, ...]], out_dim: int) -> MultimodalModel:
    """Builds encoders for the configured modalities, the fusion and the head.

    Args:
        config: a ``ModelConfig`` (``encoders``: modality -> spec, ``fusion`` and ``head`` specs, and optional
            ``unimodal_head`` and ``predictor`` specs, each built once per modality).
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
    unimodal_heads, predictors = {}, {}
    if config.unimodal_head:
        unimodal_heads = {
            m: HEADS.build(config.unimodal_head, in_dim=e.out_dim, out_dim=out_dim) for m, e in encoders.items()
        }
    if config.predictor:
        predictors = {
            m: HEADS.build(config.predictor, in_dim=fusion.out_dim, out_dim=e.out_dim) for m, e in encoders.items()
        }
    return MultimodalModel(encoders, fusion, head, unimodal_heads, predictors)


class MoMoConfig(ComponentConfig):
    """Options of the ``momo`` architecture (``model.options``); see :class:`MoMoModel`."""

    shared: bool = True
    patch_size: int = Field(7, gt=0)
    dim: int = Field(64, gt=0)
    depth: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    projection_dim: int = Field(64, gt=0)
    temperature: float = Field(0.07, gt=0)
    # At least data.text.max_length: the size of the text position table.
    max_text_length: int = Field(64, gt=0)


@ARCHITECTURES.register("momo", MoMoConfig)
def build_momo(
    shared: bool,
    patch_size: int,
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: float,
    dropout: float,
    projection_dim: int,
    temperature: float,
    max_text_length: int,
    config: Any,
    shapes: Mapping[str, tuple[int, ...]],
    out_dim: int,
) -> MoMoModel:
    """MoMo's shared single stream (``shared``) or the dual-stream baseline of the same depth and width."""
    for modality in ("image", "text"):
        if modality not in shapes:
            raise ConfigError(f"model.name: momo needs image and text data (the data has: {', '.join(shapes)})")
    image_shape = tuple(shapes["image"])
    if image_shape[-1] % patch_size or image_shape[-2] % patch_size:
        raise ConfigError(f"model.options.patch_size: {patch_size} does not divide the image size {image_shape[1:]}")

    def stream() -> StreamEncoder:
        return StreamEncoder(image_shape, patch_size, dim, depth, heads, mlp_ratio, dropout, max_text_length)

    return MoMoModel(stream(), None if shared else stream(), out_dim, projection_dim, temperature)


class MultiModelConfig(ComponentConfig):
    """Options of the ``multimodel`` architecture (``model.options``); see :class:`MultiModel`."""

    dim: int = Field(64, gt=0)
    heads: int = Field(4, ge=1)
    num_experts: int = Field(4, ge=1)
    k: int = Field(2, ge=1)
    expert_hidden: int = Field(128, gt=0)
    use_moe: bool = True
    use_attention: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    max_tasks: int = Field(8, ge=1)


@ARCHITECTURES.register("multimodel", MultiModelConfig)
def build_multimodel(
    dim: int,
    heads: int,
    num_experts: int,
    k: int,
    expert_hidden: int,
    use_moe: bool,
    use_attention: bool,
    dropout: float,
    max_tasks: int,
    config: Any,
    shapes: Mapping[str, tuple[int, ...]],
    out_dim: int,
) -> MultiModel:
    """MultiModel with an input net per image/audio modality of the data (text is always there)."""
    if k > num_experts:
        raise ConfigError(f"model.options.k: {k} experts per token but only {num_experts} experts")
    if dim % heads or dim % 2:
        raise ConfigError(f"model.options.dim: {dim} must be even and divisible by heads ({heads})")
    image_channels = shapes["image"][0] if "image" in shapes else None
    n_mels = shapes["audio"][-2] if "audio" in shapes else None
    return MultiModel(
        image_channels,
        n_mels,
        out_dim,
        max_tasks,
        dim,
        heads,
        num_experts,
        k,
        expert_hidden,
        use_moe,
        use_attention,
        dropout,
    )
