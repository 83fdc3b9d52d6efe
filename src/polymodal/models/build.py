"""Builds the architecture a validated model config names: ``multimodal`` (default), ``momo`` or ``multimodel``.

Each architecture's options class also declares what a model built from a config offers strategies
(``capabilities``, names of :data:`CAPABILITIES`) and what it needs from the data (``check_data``), so a strategy
that needs what the model lacks is refused when the config is validated (``polymodal.config``), not at step 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from torch import nn

from polymodal.data.spec import DataSpec
from polymodal.data.vocab import modality_kind
from polymodal.errors import ConfigError
from polymodal.models.bridge import BridgeProjector, CMCRProjector
from polymodal.models.config import ModelConfig
from polymodal.models.encoders import ENCODERS
from polymodal.models.fusion import FUSIONS
from polymodal.models.heads import HEADS
from polymodal.models.multimodal import MultimodalModel
from polymodal.models.multimodel import MultiModel
from polymodal.models.stream import FusionEncoder, MoMoModel, StreamEncoder
from polymodal.registry import ComponentConfig, Registry

ARCHITECTURES = Registry("architecture")


@dataclass(frozen=True)
class Capability:
    """Something a strategy may need from a model, and where it comes from.

    Attributes:
        what: what the model has, as a refusal names it.
        architectures: the architectures (``model.name``) that can have it.
        setting: within those, the model setting that gives it and what to set (empty: they always have it).
    """

    what: str
    architectures: tuple[str, ...]
    setting: tuple[str, str] | None = None


CAPABILITIES: dict[str, Capability] = {
    "outputs": Capability("one fused output per sample", ("multimodal",)),
    "fusion": Capability("separate per-modality encoders fused through a head", ("multimodal",)),
    "shared_head": Capability(
        "a fusion that scores each modality through the shared head", ("multimodal",), ("model.fusion.name", "late")
    ),
    "projections": Capability(
        "contrastive projections into one space", ("multimodal",), ("model.options.projection_dim", "a width")
    ),
    "unimodal_heads": Capability("an output head per modality", ("multimodal",), ("model.unimodal_head", "a head")),
    "predictors": Capability(
        "a predictor of each modality's feature from the fused one", ("multimodal",), ("model.predictor", "a head")
    ),
    "stream": Capability("an image-text stream with patch, token and matching heads", ("momo",)),
    "task_body": Capability("one body for many tasks with class and byte outputs", ("multimodel",)),
    "projector": Capability("a projector between two frozen spaces", ("exmcr", "cmcr")),
    "dense_alignment": Capability("Ex-MCR's leaf-to-base projector", ("exmcr",)),
}


class ArchitectureOptions(ComponentConfig):
    """Base of an architecture's options (``model.options``), with what the architecture declares."""

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        """What a model built from the ``ModelConfig`` ``model`` with these options offers (:data:`CAPABILITIES`)."""
        return frozenset()

    def check_data(self, data: DataSpec) -> None:
        """Raises a one-line ConfigError when the architecture cannot be built for or run on ``data``."""


def build_model(config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], out_dim: int) -> nn.Module:
    """Builds the architecture ``config.name`` with its ``config.options``.

    Args:
        config: a ``ModelConfig``.
        shapes: modality -> shape of one sample (per step for sequences), from the dataset.
        out_dim: number of classes, or 1 for regression.
    """
    spec = {"name": config.name, **config.options}
    return ARCHITECTURES.build(spec, config=config, shapes=shapes, out_dim=out_dim)


def encoder_specs(specs: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """Input name -> encoder spec, for each input of the data that has one, in the data's order.

    A spec named by a kind (``image``) serves every input of that kind (``image``, or ``image:front`` and
    ``image:side``, each with its own weights) unless the input has a spec of its own (``image:front``). A kind's
    spec with no input of that kind is unused (a recipe for any CSV may list encoders for every kind).

    Raises:
        ConfigError: no spec matches any input, or a ``kind:name`` spec matches no input.
    """
    chosen = {}
    for name in shapes:
        spec = specs.get(name, specs.get(modality_kind(name)))
        if spec is not None:
            chosen[name] = spec
    unmatched = [key for key in specs if ":" in key and key not in shapes]
    if unmatched or not chosen:
        key = unmatched[0] if unmatched else next(iter(specs), "")
        raise ConfigError(f"model.encoders.{key}: the data has no {key!r} input (it has: {', '.join(shapes)})")
    return chosen


class MultimodalOptions(ArchitectureOptions):
    """Options of the default ``multimodal`` architecture (``model.options``).

    ``projection_dim`` makes the model a contrastive space (CLIP-style, for the ``contrastive`` strategy): a linear
    projection of each encoder's feature into one space of that width, L2-normalised, with a learnable InfoNCE
    temperature starting at ``temperature``.
    """

    projection_dim: int | None = Field(None, gt=0)
    temperature: float = Field(0.07, gt=0)

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        offered = {"outputs", "fusion"}
        optional = {
            "shared_head": model.fusion["name"] == "late",
            "projections": self.projection_dim is not None,
            "unimodal_heads": model.unimodal_head is not None,
            "predictors": model.predictor is not None,
        }
        return frozenset(offered | {name for name, has in optional.items() if has})


@ARCHITECTURES.register("multimodal", MultimodalOptions)
def build_multimodal(
    config: ModelConfig,
    shapes: Mapping[str, tuple[int, ...]],
    out_dim: int,
    projection_dim: int | None = None,
    temperature: float = 0.07,
) -> MultimodalModel:
    """Builds encoders for the configured modalities, the fusion and the head.

    Args:
        config: a ``ModelConfig`` (``encoders``: modality -> spec, ``fusion`` and ``head`` specs, and optional
            ``unimodal_head`` and ``predictor`` specs, each built once per modality).
        shapes: modality -> shape of one sample (per step for sequences), from the dataset.
        out_dim: number of classes, or 1 for regression.
        projection_dim: width of the contrastive projections (None: none).
        temperature: initial contrastive temperature, with ``projection_dim``.
    """
    encoders = {}
    for modality, spec in encoder_specs(config.encoders, shapes).items():
        encoders[modality] = ENCODERS.build(spec, input_shape=tuple(shapes[modality]), kind=modality_kind(modality))
    try:
        fusion = FUSIONS.build(config.fusion, dims={m: e.out_dim for m, e in encoders.items()})
    except ValueError as err:  # the encoders' sizes do not suit the fusion (late: one shared head)
        raise ConfigError(f"model.fusion: {err}") from None
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
    projections = {m: nn.Linear(e.out_dim, projection_dim) for m, e in encoders.items()} if projection_dim else None
    return MultimodalModel(encoders, fusion, head, unimodal_heads, predictors, projections, temperature)


class MoMoConfig(ArchitectureOptions):
    """Options of the ``momo`` architecture (``model.options``); see :class:`MoMoModel`.

    ``shared: true`` is MoMo's single stream. ``shared: false`` is the FLAVA-like dual-stream baseline: an image-only
    and a text-only tower of the same ``depth`` and ``dim``, plus a multimodal fusion stack of ``fusion_depth``
    layers (default: ``depth``) over both towers' hidden states for pairs (matching, and masked tokens of a pair);
    ``fusion_depth: 0`` drops the fusion stack and matches a pair from the two pooled vectors (late interaction).
    """

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
    # Dual stream only (shared: false): layers of the fusion stack; None = depth, 0 = none (late interaction).
    fusion_depth: int | None = Field(None, ge=0)

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        return frozenset({"stream"})

    def check_data(self, data: DataSpec) -> None:
        if not {"image", "text"} <= set(data.modalities):
            raise ConfigError(
                f"model.name: momo needs image and text data (the data has: {', '.join(data.modalities)})"
            )


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
    fusion_depth: int | None,
    config: ModelConfig,
    shapes: Mapping[str, tuple[int, ...]],
    out_dim: int,
) -> MoMoModel:
    """MoMo's shared single stream (``shared``) or the FLAVA-like dual-stream baseline of the same depth and width."""
    image_shape = tuple(shapes["image"])
    if image_shape[-1] % patch_size or image_shape[-2] % patch_size:
        raise ConfigError(f"model.options.patch_size: {patch_size} does not divide the image size {image_shape[1:]}")
    if shared and fusion_depth is not None:
        raise ConfigError("model.options.fusion_depth: only for the dual-stream baseline (shared: false)")

    def stream(*modalities: str) -> StreamEncoder:
        return StreamEncoder(
            image_shape, patch_size, dim, depth, heads, mlp_ratio, dropout, max_text_length, modalities
        )

    if shared:
        return MoMoModel(stream("image", "text"), None, out_dim, projection_dim, temperature)
    layers = depth if fusion_depth is None else fusion_depth
    fusion = FusionEncoder(dim, layers, heads, mlp_ratio, dropout) if layers else None
    return MoMoModel(stream("image"), stream("text"), out_dim, projection_dim, temperature, fusion)


# The inputs MultiModel has an input net for (text always; image and audio when the data has them).
MULTIMODEL_INPUTS = ("image", "audio", "text")


class MultiModelConfig(ArchitectureOptions):
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

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        return frozenset({"task_body"})

    def check_data(self, data: DataSpec) -> None:
        if len(data.tasks) > self.max_tasks:
            raise ConfigError(f"model.options.max_tasks: {self.max_tasks}, but the data has {len(data.tasks)} tasks")
        unread = sorted({t.modality for t in data.tasks} - set(MULTIMODEL_INPUTS))
        if unread:
            raise ConfigError(
                f"model.name: multimodel reads {', '.join(MULTIMODEL_INPUTS)} inputs, not {', '.join(unread)}"
            )


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
    config: ModelConfig,
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


class ExMCRConfig(ArchitectureOptions):
    """Options of the ``exmcr`` architecture: Ex-MCR's leaf-to-base projector (:class:`BridgeProjector`)."""

    hidden: int = Field(256, gt=0)
    temperature: float = Field(0.05, gt=0)

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        return frozenset({"projector", "dense_alignment"})


@ARCHITECTURES.register("exmcr", ExMCRConfig)
def build_exmcr(
    hidden: int, temperature: float, config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], out_dim: int
) -> BridgeProjector:
    """The projector from the leaf space into the base space; ``shapes`` holds each space's width as
    ``{"base": (D_base,), "leaf": (D_leaf,)}``."""
    widths = _space_widths(shapes)
    return BridgeProjector(widths["leaf"], widths["base"], hidden, temperature)


class CMCRConfig(ArchitectureOptions):
    """Options of the ``cmcr`` architecture: both spaces projected into a new one (:class:`CMCRProjector`)."""

    dim: int = Field(64, gt=0)
    hidden: int = Field(256, gt=0)
    temperature: float = Field(0.05, gt=0)

    def capabilities(self, model: ModelConfig) -> frozenset[str]:
        return frozenset({"projector"})


@ARCHITECTURES.register("cmcr", CMCRConfig)
def build_cmcr(
    dim: int, hidden: int, temperature: float, config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], out_dim: int
) -> CMCRProjector:
    """The C-MCR-style pair of projectors into a new ``dim``-wide space (``shapes`` as for ``exmcr``)."""
    widths = _space_widths(shapes)
    return CMCRProjector(widths["base"], widths["leaf"], dim, hidden, temperature)


def _space_widths(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    if set(shapes) != {"base", "leaf"}:
        raise ConfigError("model.name: a bridge projector is built by `polymodal bridge` (it needs two spaces)")
    return {s: int(shapes[s][-1]) for s in ("base", "leaf")}
