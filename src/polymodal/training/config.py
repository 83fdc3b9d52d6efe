"""The recipe's ``trainer`` section: the loop's settings: optimiser, schedule, checkpoints, logging (free of torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from polymodal.eval.selection import check_metric
from polymodal.registry import ComponentConfig


class OptimizerConfig(ComponentConfig):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0)


class SchedulerConfig(ComponentConfig):
    """Learning-rate schedule: linear warm-up, then constant or cosine decay to zero at the last step.

    ``warmup_fraction`` (of the run's steps) replaces ``warmup_steps`` when set, so the warm-up scales with the run.
    """

    name: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_fraction: float | None = Field(None, ge=0.0, lt=1.0)


class TrainerConfig(ComponentConfig):
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
    # The validation metric that selects the checkpoint; its direction is declared in polymodal.eval.selection.
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

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        check_metric(value, "trainer.selection_metric")
        return value

    @field_validator("log_to")
    @classmethod
    def _csv_always(cls, value: list[str]) -> list[str]:
        if "csv" not in value:
            raise ValueError("csv is always written (plots and resume read log.csv): e.g. [csv, tensorboard]")
        return list(dict.fromkeys(value))
