"""A run's whole configuration (``RunConfig``), recipe loading, dotted-key overrides and validation.

A recipe is YAML with the sections ``data``, ``model``, ``strategy``, ``trainer`` and ``eval``. Each section's model
lives beside the code that consumes it (``polymodal.data.config.DataConfig``, ``polymodal.models.config.ModelConfig``,
``polymodal.training.config.TrainerConfig``, ``polymodal.eval.config.EvalConfig``); a bridge's ``spaces`` section is
here. Every section and every registered component rejects unknown keys, and errors name the file and the dotted key.

Nothing here imports torch at import time: the sections are checked first, and only the registries of datasets and
components (imported by :func:`validate_config` once the structure is valid) need it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from polymodal.data.config import DataConfig
from polymodal.data.spec import DataSpec
from polymodal.data.vocab import check_modality
from polymodal.errors import ConfigError
from polymodal.eval.config import EvalConfig
from polymodal.models.config import ModelConfig
from polymodal.recipe_files import apply_overrides, read_recipe
from polymodal.recipes import bundled_recipes, recipe_summary  # noqa: F401 (re-exported: the recipe API)
from polymodal.registry import ComponentConfig, format_validation_error
from polymodal.training.config import TrainerConfig

if TYPE_CHECKING:
    from polymodal.models.build import ArchitectureOptions
    from polymodal.strategies import Needs, Strategy


class SpaceSource(ComponentConfig):
    """Where one contrastive space of a bridge comes from: exactly one of ``run``, ``recipe`` or ``pretrained``.

    ``recipe`` trains the space inside the bridge's run directory (``spaces/base``, ``spaces/leaf``) on the bridge's
    ``data`` section and ``trainer.seed``, then ``overrides`` (e.g. ``data.train_part=[0, 2]``).
    """

    run: str | None = None
    recipe: str | None = None
    overrides: list[str] = []
    # Pretrained weights from a local folder: hf-clip, clap or open_clip (with model_name), see
    # polymodal.spaces.pretrained.
    pretrained: str | None = None
    path: str | None = None
    model_name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SpaceSource:
        given = [k for k in ("run", "recipe", "pretrained") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of run, recipe or pretrained (got: {', '.join(given) or 'none'})")
        if self.pretrained and not self.path:
            raise ValueError("pretrained: needs path (the local folder of the weights)")
        return self


class SpacesConfig(ComponentConfig):
    """The two contrastive spaces of an Ex-MCR bridge and how pseudo-pairs link them (``polymodal bridge``)."""

    base: SpaceSource
    leaf: SpaceSource
    # The one modality both spaces embed; pseudo-pairs go through it.
    overlap: str = "text"
    # Softmax temperature of the memory-bank aggregation (Ex-MCR's tau).
    aggregation_temperature: float = Field(0.01, gt=0)
    # all: every bank in turn is the query (Ex-MCR); overlap: only the overlapping modality's bank (C-MCR).
    queries: Literal["all", "overlap"] = "all"
    # At most this many rows per memory bank (None: every sample of its part of the split).
    bank_size: int | None = Field(None, ge=2)

    @field_validator("overlap")
    @classmethod
    def _known_overlap(cls, value: str) -> str:
        check_modality(value, "spaces.overlap")
        return value


class RunConfig(ComponentConfig):
    """A whole run: the resolved form is written as the run directory's ``config.yaml``."""

    data: DataConfig = DataConfig()
    model: ModelConfig
    strategy: dict[str, Any] = {"name": "joint"}
    trainer: TrainerConfig = TrainerConfig()
    eval: EvalConfig = EvalConfig()
    # Only in bridge recipes (polymodal bridge): the two spaces to link.
    spaces: SpacesConfig | None = None
    # Modules outside polymodal that register components this config uses (the user's encoders, strategies, ...).
    # They are imported by the caller (``--import MODULE``, or ``import`` in Python), never from the YAML; validation
    # names a module that is not imported, and records the modules of the custom components it finds.
    imports: list[str] = []


def data_config(overrides: list[str]) -> DataConfig:
    """A ``DataConfig`` from ``key.path=value`` overrides of its defaults (for commands that need only data)."""
    try:
        config = DataConfig(**apply_overrides({}, overrides))
    except ValidationError as err:
        raise ConfigError(f"data settings: {format_validation_error(err, model=DataConfig)}") from None
    _check_dataset(config)
    return config


def _check_dataset(data: DataConfig) -> None:
    """The dataset is registered and every dataset-only setting given differs from its default only if it reads it."""
    from polymodal.data.sources import DATASETS, dataset_only_settings  # imports torch

    try:
        reads = getattr(DATASETS.get(data.name)[1], "reads", None)
    except ConfigError as err:
        raise ConfigError(f"data.name: {err}") from None
    if reads is None:  # registered without declaring what it reads (a user's dataset): nothing to check
        return
    for key, readers in dataset_only_settings().items():
        if key not in reads and getattr(data, key) != DataConfig.model_fields[key].default:
            raise ConfigError(f"data.{key}: not read by data.name={data.name} (only by {', '.join(readers)})")


def _check_model_parts(model: ModelConfig) -> None:
    """Refuses the parts only the multimodal architecture is assembled from (fusion, heads) for another architecture,
    unless they are their defaults."""
    from polymodal.models import FUSIONS, HEADS

    if model.name == "multimodal":
        return
    for part, registry in {"fusion": FUSIONS, "head": HEADS, "unimodal_head": HEADS, "predictor": HEADS}.items():
        default = ModelConfig.model_fields[part].default
        if getattr(model, part) != (default and registry.validate(default, f"model.{part}")):
            raise ConfigError(f"model.{part}: not used by the {model.name!r} architecture (only multimodal has one)")


def _at(config: RunConfig, key: str) -> str:
    """The value of a dotted key of the config, as a one-line override would give it (``null`` for None)."""
    node: Any = config.model_dump(mode="json")
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, str) else json.dumps(node)


def _needs(config: RunConfig) -> Needs:
    """What the configured strategy declares it needs with its options (a ``strategies.Needs``)."""
    from polymodal.strategies import STRATEGIES

    strategy, options = STRATEGIES.get(config.strategy["name"])
    return cast("type[Strategy]", strategy).needs(options(**{k: v for k, v in config.strategy.items() if k != "name"}))


def _architecture_options(config: RunConfig) -> ArchitectureOptions:
    """The configured architecture's options (``model.options``), with what the architecture declares."""
    from polymodal.models import ARCHITECTURES

    options = cast("type[ArchitectureOptions]", ARCHITECTURES.get(config.model.name)[1])
    return options(**config.model.options)


def _check_strategy(config: RunConfig) -> None:
    """Checks what the strategy declares it needs (``Strategy.needs``) against the model, ``data.task`` and
    ``trainer.epochs``; each refusal names the strategy setting and the setting that does not provide it."""
    from polymodal.models import CAPABILITIES
    from polymodal.strategies import STRATEGIES

    name = config.strategy["name"]
    needs = _needs(config)
    offered = _architecture_options(config).capabilities(config.model)
    for capability, key in needs.model.items():
        if capability in offered:
            continue
        cap = CAPABILITIES[capability]
        if config.model.name not in cap.architectures or cap.setting is None:
            wanted, given = f"model.name: {' or '.join(cap.architectures)}", f"model.name={config.model.name}"
        else:
            wanted, given = f"{cap.setting[0]}: {cap.setting[1]}", f"{cap.setting[0]}={_at(config, cap.setting[0])}"
        raise ConfigError(f"{key}: {name} needs {cap.what} ({wanted}), not {given}")
    if config.data.task not in needs.tasks:
        raise ConfigError(f"strategy.name: {name} needs data.task: {' or '.join(needs.tasks)}, not {config.data.task}")
    if needs.epochs is not None and config.trainer.epochs < needs.epochs[0]:
        epochs, key, why = needs.epochs
        raise ConfigError(
            f"{key}: {name} runs {epochs} epochs ({why}), more than trainer.epochs={config.trainer.epochs}; "
            f"set trainer.epochs={epochs} or shorten {key}"
        )
    if config.eval.representation and not cast("type[Strategy]", STRATEGIES.get(name)[0]).representation:
        raise ConfigError(f"eval.representation: strategy {name!r} has no frozen-feature evaluation (embed, match)")


def check_data(config: RunConfig, data: DataSpec) -> None:
    """Checks a validated config against the description of its data (a ``DataSpec``) before the model is built:
    what the strategy and the architecture declare they need from the data.

    Raises:
        ConfigError: one line naming the setting that needs what the data lacks, and the data.
    """
    name = config.strategy["name"]
    needs = _needs(config)
    source = f"data.name={config.data.name}"
    if needs.task_table and not data.tasks:
        raise ConfigError(f"strategy.name: {name} needs data whose samples belong to several tasks, not {source}")
    if data.tasks and not needs.task_table:
        raise ConfigError(f"strategy.name: {name} trains one target per sample, not the several tasks of {source}")
    has = ", ".join(data.modalities)
    for modality, key in needs.inputs.items():
        if modality not in data.modalities:
            raise ConfigError(f"{key}: {name} needs the {modality} input, not in {source} (it has: {has})")
    if len(data.modalities) < needs.min_modalities:
        raise ConfigError(
            f"strategy.name: {name} needs at least {needs.min_modalities} input modalities, not {source} ({has})"
        )
    _architecture_options(config).check_data(data)


def validate_config(data: dict[str, Any], source: str) -> RunConfig:
    """Validates a recipe mapping, including each registered component, and fills every default.

    Two phases: the structure of every section (unknown keys, types, ranges) without importing torch, so such an
    error answers at once; then the dataset name and each component spec against the registries, which import torch.
    """
    try:
        config = RunConfig(**data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_validation_error(err, model=RunConfig)}") from None
    except ConfigError as err:  # raised by a field validator, e.g. an unknown modality name
        raise ConfigError(f"{source}: {err}") from None
    missing = [name for name in config.imports if name not in sys.modules]
    if missing:
        raise ConfigError(
            f"{source}: imports: components of this config are registered in module {missing[0]!r}, which is not "
            f"imported: pass --import {missing[0]} (in Python, import it first)"
        )
    from polymodal.models import ARCHITECTURES, ENCODERS, FUSIONS, HEADS
    from polymodal.strategies import STRATEGIES

    try:
        _check_dataset(config.data)
        try:
            ARCHITECTURES.get(config.model.name)
        except ConfigError as err:
            raise ConfigError(f"model.name: {err}") from None
        options = ARCHITECTURES.validate({"name": config.model.name, **config.model.options}, "model.options")
        config.model.options = {k: v for k, v in options.items() if k != "name"}
        config.model.encoders = {
            m: ENCODERS.validate(spec, f"model.encoders.{m}") for m, spec in config.model.encoders.items()
        }
        config.model.fusion = FUSIONS.validate(config.model.fusion, "model.fusion")
        config.model.head = HEADS.validate(config.model.head, "model.head")
        for key in ("unimodal_head", "predictor"):
            if getattr(config.model, key) is not None:
                setattr(config.model, key, HEADS.validate(getattr(config.model, key), f"model.{key}"))
        config.strategy = STRATEGIES.validate(config.strategy, "strategy")
        _check_model_parts(config.model)
        _check_strategy(config)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    config.imports = list(dict.fromkeys([*config.imports, *_custom_modules(config)]))
    return config


def _custom_modules(config: RunConfig) -> list[str]:
    """The modules outside polymodal that define the config's components (a script's ``__main__`` cannot be
    imported again, so it is left out)."""
    from polymodal.data.sources import DATASETS
    from polymodal.models import ARCHITECTURES, ENCODERS, FUSIONS, HEADS
    from polymodal.strategies import STRATEGIES

    model = config.model
    used = [
        (DATASETS, config.data.name),
        (ARCHITECTURES, model.name),
        *((ENCODERS, spec["name"]) for spec in model.encoders.values()),
        (FUSIONS, model.fusion["name"]),
        *((HEADS, spec["name"]) for spec in (model.head, model.unimodal_head, model.predictor) if spec),
        (STRATEGIES, config.strategy["name"]),
    ]
    modules = [registry.get(name)[0].__module__ for registry, name in used]
    return [m for m in modules if m.partition(".")[0] != "polymodal" and m != "__main__"]


def absolute_paths(config: RunConfig) -> RunConfig:
    """Makes the config's relative file paths absolute (from the working directory), in place, so that a run can be
    evaluated, resumed or embedded from any directory: ``data.root``/``train``/``val``/``test``, the processors and
    tokenizer of ``data.image``/``audio``/``text``, the encoders' model folders and earlier runs
    (``model.encoders.*.path``/``run``), and a bridge's ``spaces.*.run``/``path``."""

    def absolute(value: str | None) -> str | None:
        return str(Path(value).expanduser().resolve()) if value else value

    data = config.data
    for key in ("root", "train", "val", "test"):
        setattr(data, key, absolute(getattr(data, key)))
    data.image.processor = absolute(data.image.processor)
    data.audio.processor = absolute(data.audio.processor)
    data.text.tokenizer = absolute(data.text.tokenizer)
    for spec in config.model.encoders.values():
        for key in ("path", "run"):
            if isinstance(spec.get(key), str):
                spec[key] = absolute(spec[key])
    for source in (config.spaces.base, config.spaces.leaf) if config.spaces else ():
        source.run, source.path = absolute(source.run), absolute(source.path)
    return config


def load_config(
    recipe: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> RunConfig:
    """A validated config, every default filled in, from a recipe and overrides.

    Args:
        recipe: a bundled recipe name, a YAML path, a mapping of recipe sections, or a ``RunConfig``.
        overrides: ``key.path=value`` strings (values parsed as YAML, as on the command line), or a mapping of
            dotted keys to values (taken as they are).
    """
    if isinstance(overrides, str):
        raise ConfigError(f"overrides: expected a list of key.path=value strings or a mapping, got {overrides!r}")
    if isinstance(recipe, RunConfig):
        return validate_config(apply_overrides(recipe.model_dump(mode="json"), overrides or []), "config")
    if isinstance(recipe, Mapping):
        return validate_config(apply_overrides(dict(recipe), overrides or []), "config")
    return validate_config(*read_recipe(str(recipe), overrides))


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (what ``config.yaml`` holds)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
