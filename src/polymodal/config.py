"""Pydantic models of a run's configuration, recipe loading and dotted-key overrides.

A recipe is YAML with the sections ``data``, ``model``, ``strategy``, ``trainer`` and ``eval``. Every section and
every registered component rejects unknown keys, and errors name the file and the dotted key.

Nothing here imports torch at import time: the sections are checked first, and only the registries of datasets and
components (imported by :func:`validate_config` once the structure is valid) need it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polymodal.data.augment_settings import AugmentConfig
from polymodal.data.spec import DataSpec
from polymodal.data.vocab import check_modality
from polymodal.errors import ConfigError
from polymodal.modalities.settings import AudioConfig, FeaturesConfig, ImageConfig, TextConfig
from polymodal.recipe_files import apply_overrides, read_recipe
from polymodal.recipes import bundled_recipes, recipe_summary  # noqa: F401 (re-exported: the recipe API)
from polymodal.registry import format_validation_error

if TYPE_CHECKING:
    from polymodal.strategies import Needs


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Section):
    """Which data, how it is split and batched, and how each modality is converted."""

    # A registered dataset (``data.sources.DATASETS``), checked by validate_config and data_config.
    name: str = "avdigits"
    root: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    target: str = "label"
    task: Literal["classification", "regression"] = "classification"
    modalities: list[str] | dict[str, str] | None = None
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    # Sentiment feature files (mmsa, mult, mosi): consent to read a pickle once, and video-disjoint folds (mosi).
    trust_pickle: bool = False
    folds: int = Field(5, ge=3)
    fold: int = Field(0, ge=0)
    # multitask-digits: the tasks to build (default all; one task is the 'alone' setting of MultiModel).
    tasks: list[str] | None = None
    # multitask-digits: training examples of the low-data task (parse; None keeps its default 300, at most 700: the
    # first N of its fixed training numbers, so a smaller set is part of every larger one).
    low_data_examples: int | None = Field(None, ge=1, le=700)
    # [k, n]: keep only the k-th of n disjoint parts of the training split (one fixed permutation, whatever the
    # seed), e.g. two contrastive spaces trained on disjoint halves before bridging them.
    train_part: tuple[int, int] | None = None
    # Digit data without text (avmnist): add a text modality, a generated number phrase naming each sample's digit
    # in one of eight languages (as digit-captions).
    captions: bool = False
    image: ImageConfig = ImageConfig()
    audio: AudioConfig = AudioConfig()
    text: TextConfig = TextConfig()
    features: FeaturesConfig = FeaturesConfig()
    # Training batches only: random transforms per modality kind, e.g. {image: {}, audio: {shift: 0.2}}.
    augment: AugmentConfig = AugmentConfig()

    @field_validator("train_part")
    @classmethod
    def _valid_part(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not (value[1] >= 2 and 0 <= value[0] < value[1]):
            raise ValueError(f"expected [k, n] with n >= 2 and 0 <= k < n, got {list(value)}")
        return value

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, value: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        names = value.values() if isinstance(value, dict) else (value or [])
        for name in names:
            check_modality(name, "data.modalities")
        return value


class ModelConfig(Section):
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


class OptimizerConfig(Section):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0)


class SchedulerConfig(Section):
    """Learning-rate schedule: linear warm-up, then constant or cosine decay to zero at the last step.

    ``warmup_fraction`` (of the run's steps) replaces ``warmup_steps`` when set, so the warm-up scales with the run.
    """

    name: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_fraction: float | None = Field(None, ge=0.0, lt=1.0)


class TrainerConfig(Section):
    """The loop's settings; nothing here knows about modalities."""

    epochs: int = Field(3, ge=1)
    seed: int = 0
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    grad_clip: float | None = Field(1.0, gt=0)
    # Checkpoints are written at every epoch end, every ``checkpoint_every`` steps (0: never by count) and after
    # ``checkpoint_minutes`` of training without one (0: never by time), so a long first epoch can be resumed too.
    checkpoint_every: int = Field(0, ge=0)
    checkpoint_minutes: float = Field(10.0, ge=0)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(20, ge=1)
    # Where the logged values go besides log.csv (always written: plots and resume read it): tensorboard writes
    # event files in RUN/tensorboard (pip install 'polymodal[tensorboard]').
    log_to: list[Literal["csv", "tensorboard"]] = ["csv"]
    selection_metric: str = "accuracy"
    # Validate (and select on) every n-th epoch only, and always the last: for long runs with a costly validation.
    validate_every: int = Field(1, ge=1)
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    # auto: an encoder with fixed weights in eval mode (hf or from_run with freeze: true) whose inputs are not augmented
    # has its train and val features computed once into the user cache folder ($POLYMODAL_CACHE, else
    # $XDG_CACHE_HOME/polymodal, else ~/.cache/polymodal), keyed by its weights, the data and the preprocessing, and
    # reused by every epoch and later runs; off: every epoch runs the encoder (polymodal.data.feature_cache).
    feature_cache: Literal["auto", "off"] = "auto"
    # Stage lines, progress and one line per epoch on stderr (a bar on a terminal, plain lines otherwise).
    progress: bool = True

    @field_validator("feature_cache", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare off as false

    @field_validator("log_to")
    @classmethod
    def _csv_always(cls, value: list[str]) -> list[str]:
        if "csv" not in value:
            raise ValueError("csv is always written (plots and resume read log.csv): e.g. [csv, tensorboard]")
        return list(dict.fromkeys(value))


class EvalConfig(Section):
    """What is measured besides the main metrics."""

    noise_levels: list[float] = [0.0, 0.5, 1.0, 2.0]
    seed: int = 0
    per_modality_every_epoch: bool = True
    # Frozen-feature evaluation of image-text encoders (linear probes, retrieval, matching); needs a strategy with
    # ``embed`` and ``match`` (staged).
    representation: bool = False


class SpaceSource(Section):
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


class SpacesConfig(Section):
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


class RunConfig(Section):
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
    return strategy.needs(options(**{k: v for k, v in config.strategy.items() if k != "name"}))


def _check_strategy(config: RunConfig) -> None:
    """Checks what the strategy declares it needs (``Strategy.needs``) against the model, ``data.task`` and
    ``trainer.epochs``; each refusal names the strategy setting and the setting that does not provide it."""
    from polymodal.models import ARCHITECTURES, CAPABILITIES
    from polymodal.strategies import STRATEGIES

    name = config.strategy["name"]
    needs = _needs(config)
    architecture = ARCHITECTURES.get(config.model.name)[1](**config.model.options)
    offered = architecture.capabilities(config.model)
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
    if config.eval.representation and not STRATEGIES.get(name)[0].representation:
        raise ConfigError(f"eval.representation: strategy {name!r} has no frozen-feature evaluation (embed, match)")


def check_data(config: RunConfig, data: DataSpec) -> None:
    """Checks a validated config against the description of its data (a ``DataSpec``) before the model is built:
    what the strategy and the architecture declare they need from the data.

    Raises:
        ConfigError: one line naming the setting that needs what the data lacks, and the data.
    """
    from polymodal.models import ARCHITECTURES

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
    ARCHITECTURES.get(config.model.name)[1](**config.model.options).check_data(data)


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
