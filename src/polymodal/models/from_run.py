"""The ``from_run`` encoder: the encoder an earlier polymodal run trained for one of its inputs, with its weights.

A user pretrains on big data (e.g. the embedded avdigits) and fine-tunes on a small set. The new run converts that
input as the earlier run did: :func:`adopt_adapter_settings` copies the earlier run's adapter settings
(``data.image``, ``data.audio``, ``data.text``) into the new config, and the encoder refuses data of another shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from safetensors.torch import load_file
from torch import Tensor, nn

from polymodal.data.vocab import adapter_kind, modality_kind
from polymodal.errors import ConfigError
from polymodal.fileio import read_json_object, sha256_file
from polymodal.models.build import encoder_specs
from polymodal.models.encoders import ENCODERS
from polymodal.recipe_files import read_yaml
from polymodal.registry import ComponentConfig, format_validation_error

ADAPTED = ("image", "audio", "text")  # adapter settings a run's config holds per kind (features have none to fit)


class FromRunConfig(ComponentConfig):
    """Settings of the ``from_run`` encoder (see :class:`RunEncoder`)."""

    run: str
    modality: str | None = None
    freeze: bool = False
    lr_scale: float = Field(1.0, gt=0)


def read_run(run: str | Path, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An earlier run's saved config (``config.yaml``, which holds every setting of the run) and ``run.json``.

    Raises:
        ConfigError: naming ``where``, when ``run`` is not a finished polymodal run directory.
    """
    folder = Path(run)
    missing = [f for f in ("config.yaml", "run.json", "checkpoints/best.safetensors") if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"{where}: {folder} is not a finished polymodal run (no {', '.join(missing)})")
    return read_yaml(folder / "config.yaml"), read_json_object(folder / "run.json")


def _run_input(
    config: dict[str, Any], info: dict[str, Any], modality: str, where: str
) -> tuple[dict[str, Any], tuple[int, ...]]:
    """The spec and input shape of the encoder the run trained for ``modality``."""
    shapes = {m: tuple(s) for m, s in info.get("shapes", {}).items()}
    model = config.get("model") or {}
    name = model.get("name", "multimodal")
    if name != "multimodal":
        raise ConfigError(f"{where}: the run's {name!r} model has no separate encoders to reuse")
    specs = encoder_specs(model.get("encoders") or {}, shapes)
    if modality not in specs:
        raise ConfigError(f"{where}: the run has no {modality!r} encoder (it has: {', '.join(specs)})")
    return ENCODERS.validate(specs[modality], f"{where}: model.encoders.{modality}"), shapes[modality]


def _run_settings(config: dict[str, Any], kind: str, settings: type[Any], where: str) -> dict[str, Any]:
    """The run's adapter settings of one kind (``data.image``, ...), every default filled in."""
    try:
        return settings.model_validate((config.get("data") or {}).get(kind) or {}).model_dump()
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{where}: data.{kind}", settings)) from None


class RunEncoder(nn.Module):
    """An earlier run's encoder with its trained weights.

    Args:
        encoder: the rebuilt encoder, its weights loaded.
        freeze: keep its weights fixed (and the encoder in eval mode).
        lr_scale: factor on the optimizer's learning rate for its parameters.
    """

    def __init__(self, encoder: nn.Module, freeze: bool, lr_scale: float) -> None:
        super().__init__()
        self.encoder = encoder.requires_grad_(not freeze)
        self.frozen = freeze
        self.lr_scale = lr_scale
        self.out_dim = encoder.out_dim

    def train(self, mode: bool = True) -> RunEncoder:
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode (fixed batch-norm statistics)."""
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The earlier encoder's (B, D) features."""
        return self.encoder(x, lengths)


@ENCODERS.register("from_run", FromRunConfig)
def build_from_run(
    input_shape: tuple[int, ...],
    kind: str,
    run: str,
    modality: str | None,
    freeze: bool,
    lr_scale: float,
    **_: object,
) -> RunEncoder:
    """Rebuilds the encoder that ``run`` trained for its input ``modality`` (default: the kind of input it serves
    here) and loads its weights from the run's selected checkpoint.

    Raises:
        ConfigError: not a finished run, no such encoder in it, a checkpoint that does not verify or fit, or data
            whose inputs have another shape than the run's.
    """
    modality = modality or kind
    where = f"model.encoders.{kind}.run"
    config, info = read_run(run, where)
    spec, shape = _run_input(config, info, modality, where)
    if tuple(input_shape) != shape:
        raise ConfigError(
            f"{where}: the run's {modality} encoder takes inputs of shape {shape} but the data gives "
            f"{tuple(input_shape)} (use the run's data.{adapter_kind(modality)} settings)"
        )
    encoder = ENCODERS.build(spec, input_shape=shape, kind=modality_kind(modality))
    best = Path(run) / "checkpoints" / "best.safetensors"
    if sha256_file(best) != read_json_object(best.with_suffix(".json")).get("sha256"):
        raise ConfigError(f"{where}: {best}: checksum mismatch (truncated or corrupted)")
    prefix = f"encoders.{modality}."
    weights = {k.removeprefix(prefix): v for k, v in load_file(best).items() if k.startswith(prefix)}
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{where}: {best} does not fit the run's {modality} encoder ({first})") from None
    return RunEncoder(encoder, freeze, lr_scale)


def adopt_adapter_settings(config: Any) -> None:
    """Copies into ``config.data`` the adapter settings of the runs whose encoders ``config`` reuses, in place.

    Settings the new config sets itself are kept when they agree with the run's.

    Raises:
        ConfigError: a setting that differs from the run's, or runs of one kind with different settings.
    """
    adopted: dict[str, tuple[str, dict[str, Any]]] = {}
    for slot, spec in config.model.encoders.items():
        if spec.get("name") != "from_run":
            continue
        kind = adapter_kind(spec.get("modality") or slot)
        if kind not in ADAPTED:
            continue
        where = f"model.encoders.{slot}.run"
        current = getattr(config.data, kind)
        settings = _run_settings(read_run(spec["run"], where)[0], kind, type(current), where)
        if kind in adopted and adopted[kind][1] != settings:
            raise ConfigError(f"model.encoders.{slot}.run: its data.{kind} differs from {adopted[kind][0]}'s")
        adopted[kind] = (spec["run"], settings)
        clash = [k for k in current.model_fields_set if getattr(current, k) != settings[k]]
        if clash:
            raise ConfigError(
                f"data.{kind}.{clash[0]}: {getattr(current, clash[0])!r} but the run {spec['run']} that "
                f"model.encoders.{slot} reuses has {settings[clash[0]]!r} (leave it unset to use the run's)"
            )
        setattr(config.data, kind, type(current).model_validate(settings))
