"""The Python API: train a run, load a run directory, and predict, embed or evaluate with its selected weights.

    import polymodal

    run = polymodal.train("avdigits-joint", {"trainer.epochs": 1}, out="runs/quick")
    run.metrics["test"]["accuracy"]
    run = polymodal.load("runs/quick")          # later, from any working directory
    rows = run.predict("new.csv")               # a CSV manifest, or a Dataset of polymodal samples
    vectors = run.embed("text", ["seven", "huit"])
    report = run.evaluate(split="val")
    model = run.model()                         # the torch module itself
    bundle = polymodal.load_data("avdigits-joint")   # the splits a run of a config trains and is scored on

These are the functions behind ``polymodal train``, ``predict``, ``embed`` and ``eval`` (``polymodal.runs``); torch
and the registries are imported on the first call, so ``import polymodal`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn
    from torch.utils.data import Dataset

    from polymodal.config import RunConfig
    from polymodal.data.memory import Splits
    from polymodal.data.sources import DataBundle

# Data settings that name or cut a data source; data passed from Python is used as given, so they must stay unset.
SOURCE_SETTINGS = ("root", "train", "val", "test", "modalities", "max_train_samples", "max_eval_samples", "train_part")


def train(
    recipe: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    out: str | Path,
    data: Splits | None = None,
    resume: bool = False,
) -> Run:
    """Trains and evaluates a run, writing its run directory, as ``polymodal train`` does.

    Args:
        recipe: a bundled recipe name, a YAML path, a mapping of recipe sections, or a ``RunConfig``.
        overrides: ``["trainer.epochs=1"]`` (values parsed as YAML, as on the command line) or
            ``{"trainer.epochs": 1}`` (values taken as they are).
        out: the run directory to write (it must not exist, or be empty, unless ``resume``).
        data: the splits as torch Datasets of polymodal samples (:class:`polymodal.Splits`) instead of the
            config's data source; the other data settings (batch sizes, augmentation) still apply.
        resume: continue the unfinished run in ``out`` from its newest checkpoint (with the same ``data``).

    Returns:
        The finished run.

    Raises:
        ConfigError, DataError: bad config or data, in one line, before anything is written.
    """
    from polymodal.config import load_config
    from polymodal.runs.train import train_run

    config = load_config(recipe, overrides)
    bundle = _passed_data(config, data) if data is not None else None
    train_run(config, Path(out), resume=resume, data=bundle)
    return Run(out)


def load_data(
    recipe: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> DataBundle:
    """The splits a run of this config trains, selects and is tested on, built as :func:`train` builds them.

    Args:
        recipe: as for :func:`train` (a trained run's ``run.config`` gives that run's data).
        overrides: as for :func:`train`; ``trainer.seed`` picks ``data.max_train_samples`` and carved validation.

    Returns:
        A ``DataBundle``: ``train``, ``val`` and ``test`` torch Datasets of polymodal samples (a ``Subset`` where
        the config takes part of a split) and what the run records of them (``task``, ``modalities``, ``shapes``,
        ``class_names``, ``tasks``, ``info()``).

    Raises:
        ConfigError, DataError: bad config or data, in one line.
    """
    from polymodal.config import absolute_paths, load_config
    from polymodal.runs.train import fit_inputs, read_data

    config = load_config(recipe, overrides)
    absolute_paths(config)
    fitted = fit_inputs(config)
    bundle = read_data(config, show=False)
    bundle.preprocessing = fitted or None
    return bundle


def _passed_data(config: RunConfig, data: Any) -> DataBundle:
    """Points the config at data passed from Python (``data.name: memory``) and checks the data."""
    from polymodal.data.config import DataConfig
    from polymodal.data.memory import Splits

    if not isinstance(data, Splits):
        raise ConfigError(
            f"data: expected polymodal.Splits(train, val, test, class_names=...), got {type(data).__name__}"
        )
    for key in SOURCE_SETTINGS:
        if getattr(config.data, key) != DataConfig.model_fields[key].default:
            raise ConfigError(f"data.{key}: not used with data passed from Python (data=Splits(...)); leave it unset")
    config.data.name, config.data.task = "memory", data.task
    return data.bundle()


def load(run_dir: str | Path) -> Run:
    """A trained run directory (``polymodal train --out RUN``, or :func:`train`) to predict, embed or evaluate with."""
    return Run(run_dir)


class Run:
    """A run directory: its config, data description and metrics, and its selected weights at work.

    Each call of :meth:`predict`, :meth:`embed` or :meth:`evaluate` loads the selected weights
    (``checkpoints/best.*``) again, so a run that is still training is used as it stands.

    Args:
        path: the run directory (made absolute).

    Raises:
        ConfigError: ``path`` is not a run directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "config.yaml").is_file() or not (self.path / "run.json").is_file():
            raise ConfigError(f"{path}: not a polymodal run directory (config.yaml or run.json missing)")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @cached_property
    def config(self) -> RunConfig:
        """The run's resolved config (``config.yaml``)."""
        from polymodal.config import validate_config
        from polymodal.recipe_files import read_yaml

        return validate_config(read_yaml(self.path / "config.yaml"), str(self.path / "config.yaml"))

    @property
    def info(self) -> dict[str, Any]:
        """What the data told the model (``run.json``): task, modalities, shapes, class names, columns."""
        return json.loads((self.path / "run.json").read_text(encoding="utf-8"))

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The final report (``metrics.json``), or None while the run has not finished."""
        path = self.path / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def predict(self, data: str | Path | Dataset, batch_size: int = 256) -> list[dict[str, Any]]:
        """Predictions for every row of a CSV manifest with the run's columns, or every sample of a Dataset of
        polymodal samples (no target needed; inputs it lacks are missing).

        Returns:
            One dict per row: ``id`` (id column, row number, or the sample's ``index``), ``prediction``,
            ``probabilities`` (classification) and ``present``; :func:`polymodal.write_predictions` writes them.
        """
        from polymodal.runs.inference import predict

        return predict(self.path, data, batch_size)

    def embed(self, modality: str, items: Sequence[Any], batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of one modality's items with the run's encoder: file paths or strings
        (converted with the run's data settings), or tensors shaped like one training input."""
        from polymodal.runs.inference import embed

        return embed(self.path, modality, list(items), batch_size)

    def model(self) -> nn.Module:
        """The run's model with its selected weights, in eval mode, on the CPU (to time or inspect it)."""
        from polymodal.runs.rundir import load_run

        return load_run(self.path)[2].model

    def evaluate(self, split: str = "test", data: str | Path | Dataset | None = None) -> dict[str, Any]:
        """Scores the selected weights on the run's ``val`` or ``test`` split, or on ``data`` (a CSV manifest or a
        Dataset of polymodal samples, scored as ``test``).

        Returns:
            The report, with the keys of ``metrics.json`` (``data``, ``examples``, the split's metrics,
            ``per_modality``, ``missing``, ``noise``, ...).
        """
        from polymodal.runs.inference import evaluate_saved_run

        if split not in ("val", "test"):
            raise ConfigError(f"split: expected val or test, got {split!r}")
        return evaluate_saved_run(self.path, split, data)
