"""Assemble, train and evaluate runs: the library functions behind ``polymodal train/eval/embed``.

This glue is the only place that knows every part at once: it builds data, model and strategy from a validated
``RunConfig``, hands them to the Trainer, and writes the run directory (``config.yaml``, ``run.json``,
``metrics.json``, ``log.csv``, ``checkpoints/``, ``plots/``).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal import __version__
from polymodal.config import RunConfig, absolute_paths, check_data, dump_config, validate_config
from polymodal.data.augment import AugmentedCollate
from polymodal.data.collate import Collate, move_to
from polymodal.data.feature_cache import prepare_feature_cache
from polymodal.data.fitting import describe_preprocessing
from polymodal.data.memory import run_samples
from polymodal.data.sources import (
    DataBundle,
    build_data,
    build_split,
    check_same_shapes,
    fit_data_settings,
    manifest_split,
)
from polymodal.data.spec import DataSpec
from polymodal.data.vocab import adapter_kind, check_modality
from polymodal.errors import ConfigError, DataError
from polymodal.eval.diagnosis import laziness_remedy, laziness_report
from polymodal.eval.evaluate import evaluate_split, full_report, main_metrics, validation_metrics
from polymodal.eval.plots import plot_modality_accuracy, plot_training_curves
from polymodal.eval.representation import representation_report
from polymodal.eval.selection import regression_counterpart
from polymodal.fileio import atomic_write_bytes, atomic_write_text
from polymodal.modalities.adapters import adapter
from polymodal.models import adopt_adapter_settings, build_model
from polymodal.progress import duration, say
from polymodal.recipe_files import apply_overrides, read_yaml
from polymodal.strategies import STRATEGIES
from polymodal.training import Trainer, seed_everything
from polymodal.training.checkpoint import CheckpointManager
from polymodal.training.distributed import World, distributed_session
from polymodal.training.log import check_tensorboard, wide_rows
from polymodal.training.trainer import resolve_device


def build_strategy(config: RunConfig, bundle: DataBundle) -> Any:
    """Checks the config against the data's description, then builds the model for the data's shapes and the
    configured strategy around it."""
    check_data(config, bundle.spec)
    model = build_model(config.model, bundle.shapes, bundle.out_dim)
    return STRATEGIES.build(config.strategy, model=model, data=bundle.spec)


def _loader(dataset: Dataset, bundle: DataBundle, config: RunConfig, collate: Any = None) -> DataLoader:
    """An evaluation loader over one split: in order, ``data.eval_batch_size``, ``collate`` (default: the bundle's)."""
    return DataLoader(
        dataset,
        batch_size=config.data.eval_batch_size,
        shuffle=False,
        collate_fn=collate or bundle.collate(),
        num_workers=config.data.num_workers,
    )


# What a resumed run may change: how it reports progress, not what it computes.
RESUME_MAY_CHANGE = ("trainer.progress",)


def check_resumable(out: Path, config: RunConfig) -> None:
    """Raises a ConfigError unless ``out`` is an unfinished run directory of the same config.

    Settings that differ from the run's ``config.yaml`` are named with both values (``RESUME_MAY_CHANGE`` aside).
    """
    if not (out / "config.yaml").is_file():
        raise ConfigError(f"{out}: not a polymodal run directory (no config.yaml), nothing to resume")
    if (out / "metrics.json").is_file():
        raise ConfigError(
            f"{out}: the run already finished (metrics.json exists), nothing to resume; "
            f"score it again with `polymodal eval {out}`, or train anew with another --out"
        )
    saved = validate_config(read_yaml(out / "config.yaml"), str(out / "config.yaml")).model_dump(mode="json")
    mine = config.model_dump(mode="json")
    diff = [k for k in sorted(_diff_keys(saved, mine)) if k not in RESUME_MAY_CHANGE]
    if diff:
        shown = "; ".join(f"{k}={_at(mine, k)} (the run has {_at(saved, k)})" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(
            f"{out}: --resume continues a run with its own config, and this one differs: {shown}{more}; "
            f"resume with `polymodal train --resume --out {out}` alone"
        )


def saved_config(out: Path, overrides: list[str]) -> RunConfig:
    """A run directory's own config (its ``config.yaml``) with ``overrides`` applied: ``--resume`` without a recipe."""
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{out}: not a polymodal run directory (no config.yaml), nothing to resume")
    config = validate_config(apply_overrides(read_yaml(path), overrides), str(path))
    if config.spaces is not None:
        raise ConfigError(f"{out}: a bridge run; continue it with `polymodal bridge RECIPE --resume --out {out}`")
    return config


def _at(tree: dict[str, Any], key: str) -> str:
    """The value at a dotted key of a nested dict, as YAML would show it (``absent`` where there is none)."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "absent"
        node = node[part]
    return node if isinstance(node, str) else json.dumps(node)


def _check_resume(out: Path, config: RunConfig) -> None:
    check_resumable(out, config)
    if not CheckpointManager(out / "checkpoints").step_checkpoints():
        raise ConfigError(f"{out}/checkpoints: no checkpoint to resume from")


_MISSING = object()


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [d for k in keys for d in _diff_keys(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _selection_for_task(config: RunConfig, show: bool) -> None:
    """Replaces a classification selection metric by its regression counterpart on regression data, and says so."""
    metric = config.trainer.selection_metric
    counterpart = regression_counterpart(metric)
    if config.data.task == "regression" and counterpart is not None:
        config.trainer.selection_metric = counterpart
        say(
            f"polymodal: note: regression data: selecting checkpoints on {config.trainer.selection_metric} "
            f"instead of {metric}",
            show,
        )


def train_run(config: RunConfig, out: Path, resume: bool = False, data: DataBundle | None = None) -> dict[str, Any]:
    """Trains and evaluates one run, writing its run directory; returns the contents of ``metrics.json``.

    Data, model and strategy are built and validated before anything is written, so bad input leaves no run
    directory behind. Relative paths in the config are made absolute first (the run can then be evaluated from any
    directory). Under ``torchrun`` every rank trains (see ``Trainer``), rank 0 alone writes the run directory, and
    every rank returns rank 0's metrics.

    Args:
        config: a validated config.
        out: the run directory.
        resume: continue the unfinished run in ``out`` from its newest checkpoint.
        data: splits built by the caller (data passed from Python, ``data.name: memory``) instead of ``config.data``.
    """
    out = Path(out)
    absolute_paths(config)
    clock = PhaseClock()
    device = resolve_device(config.trainer.device)
    with distributed_session(device) as world:
        # Before the resume check: a resumed run fits the same settings from the same files; reused encoders
        # (from_run) first bring the adapter settings they were trained with.
        adopt_adapter_settings(config)
        fitted = fit_data_settings(config.data)
        _selection_for_task(config, world.is_main)
        if resume:
            _check_resume(out, config)
        elif out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out}: already exists and is not empty (use --resume to continue it, or another --out)")
        if "tensorboard" in config.trainer.log_to:
            check_tensorboard()
        # The same seed on every rank: every rank starts from the same weights.
        seed_everything(config.trainer.seed, config.trainer.deterministic)
        bundle = read_data(config, config.trainer.progress and world.is_main) if data is None else data
        bundle.preprocessing = fitted or None
        clock.lap("data")
        if config.data.batch_size > len(bundle.train) and world.is_main:
            say(
                f"polymodal: warning: data.batch_size={config.data.batch_size} is more than the {len(bundle.train)} "
                "training samples: one step per epoch (set a smaller data.batch_size)"
            )
        if config.trainer.progress and world.is_main and bundle.columns:
            shapes = {m: bundle.shapes[m] for m in bundle.modalities}
            say("inputs:\n" + describe_preprocessing(config.data, shapes, fitted), True)
        strategy = build_strategy(config, bundle)
        # A data column without an encoder is not an input of the model: no per-modality or missing-modality scores.
        bundle.modalities = [m for m in bundle.modalities if m in strategy.model.modalities]
        world.barrier()  # every rank has checked ``out`` before rank 0 creates it
        created = not out.exists()
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
        try:
            return _fit_and_report(config, out, bundle, strategy, world.device(device), resume, world, clock)
        except BaseException:
            # A run that failed before its first checkpoint has nothing to resume: leave no half-written directory.
            if world.is_main and created and not CheckpointManager(out / "checkpoints").step_checkpoints():
                shutil.rmtree(out, ignore_errors=True)
            raise


def read_data(config: RunConfig, show: bool) -> DataBundle:
    """``build_data`` between two stage lines: what is read, then the splits' sizes and the time it took."""
    files = [Path(getattr(config.data, k)).name for k in ("root", "train", "val", "test") if getattr(config.data, k)]
    say(f"reading data: {config.data.name}" + (f" ({', '.join(files)})" if files else ""), show)
    started = time.perf_counter()
    bundle = build_data(config.data, config.trainer.seed, show)
    say(
        f"data: {len(bundle.train)} train, {len(bundle.val)} val, {len(bundle.test)} test samples "
        f"({', '.join(bundle.modalities)}) in {duration(time.perf_counter() - started)}",
        show,
    )
    return bundle


def provenance() -> dict[str, Any]:
    """What produced a run, for ``metrics.json``: versions, the git commit of a checkout, and the command line.

    ``git_commit`` is there only when the package runs from a git checkout (not from an installed copy).
    """
    record: dict[str, Any] = {
        "versions": {
            "polymodal": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        }
    }
    commit = git_commit(Path(__file__).resolve().parent)
    if commit:
        record["git_commit"] = commit
    record["command"] = list(sys.argv)
    return record


def git_commit(folder: Path) -> str | None:
    """The commit checked out where ``folder``'s ``__init__.py`` is tracked by git; None anywhere else."""
    try:
        # Tracked, not merely inside a repository: an installed copy may sit in a virtual env inside a user's repo.
        tracked = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "--error-unmatch", "__init__.py"], capture_output=True, timeout=10
        )
        if tracked.returncode != 0:
            return None
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, or git failed
        return None
    return head.stdout.strip()


class PhaseClock:
    """Wall-clock seconds of a run's phases, for ``metrics.json``'s ``timing``.

    ``lap(name)`` adds the time since the previous lap to ``name``, less the time spent meanwhile in callbacks
    wrapped by ``timed``, which count under their own name.

    Args:
        now: the clock read, in seconds.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self.now = now
        self.started = self.last = now()
        self.nested = 0.0
        self.seconds: dict[str, float] = {}

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def lap(self, name: str) -> None:
        now = self.now()
        self._add(name, now - self.last - self.nested)
        self.last, self.nested = now, 0.0

    def timed(self, name: str, function: Any) -> Any:
        """``function`` with the time of each call added to ``name``."""

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = self.now()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = self.now() - started
                self._add(name, seconds)
                self.nested += seconds

        return timed_call

    def report(self) -> dict[str, float]:
        """Seconds per phase and ``total``, from the start to the last lap."""
        return {**{k: round(v, 3) for k, v in self.seconds.items()}, "total": round(self.last - self.started, 3)}


def _fit_and_report(
    config: RunConfig,
    out: Path,
    bundle: DataBundle,
    strategy: Any,
    device: torch.device,
    resume: bool,
    world: World,
    clock: PhaseClock,
) -> dict[str, Any]:
    if world.is_main:
        atomic_write_text(out / "config.yaml", dump_config(config))
        atomic_write_text(out / "run.json", json.dumps(bundle.info(), indent=2))
    val_loader = _loader(bundle.val, bundle, config)
    started = time.perf_counter()
    # Frozen encoders' features, computed once (or found from an earlier run): the epochs read them, not raw inputs.
    cache = prepare_feature_cache(config, bundle, strategy.model, device, world.is_main, world.barrier)
    train_set, collate, epoch_val_loader = bundle.train, bundle.collate(), val_loader
    if cache is not None:
        train_set, collate = cache.dataset("train", bundle.train), cache.collate(collate)
        epoch_val_loader = _loader(cache.dataset("val", bundle.val), bundle, config, collate)

    def validate(strat: Any) -> dict[str, float]:
        own = strat.evaluate(epoch_val_loader, device)
        if own is not None:
            return own["metrics"]
        return validation_metrics(
            strat,
            epoch_val_loader,
            bundle.task,
            bundle.modalities,
            config.eval.per_modality_every_epoch,
            device,
            config.trainer.progress,
        )

    if config.data.augment.active:
        collate = AugmentedCollate(collate, config.data.augment)
    trainer = Trainer(
        strategy,
        config.trainer,
        out,
        collate,
        config.data.batch_size,
        clock.timed("validation", validate),
        config.data.num_workers,
        world,
    )
    clock.lap("setup")
    with cache.precomputed(strategy.model) if cache is not None else nullcontext():
        summary = trainer.fit(train_set, resume=resume)
    clock.lap("train")
    if not world.is_main:
        return world.broadcast(None)  # rank 0 tests the selected weights on the whole test split
    selected = trainer.load_best()
    strategy.model.eval()
    plots = out / "plots"
    test_loader = _loader(bundle.test, bundle, config)
    show = config.trainer.progress
    splits = "" if trainer.selected_metrics else f"val ({len(bundle.val)} samples) and "
    say(
        f"evaluating the selected weights (epoch {selected['epoch']}, step {selected['step']}) on {splits}test "
        f"({len(bundle.test)} samples)",
        show,
    )
    own_val = strategy.evaluate(val_loader, device)
    if own_val is not None:  # the strategy scores its own outputs (e.g. multitask)
        val = own_val["metrics"]
        report = strategy.evaluate(test_loader, device, plots)
    else:
        # The selected weights were validated when they were saved: their validation metrics are not computed again.
        val = main_metrics(trainer.selected_metrics) or evaluate_split(
            strategy.predict, val_loader, bundle.task, device, "val" if show else None
        )
        report = full_report(
            strategy,
            test_loader,
            bundle.task,
            bundle.modalities,
            bundle.class_names,
            config.eval.noise_levels,
            config.eval.seed,
            device,
            plots,
            run_name=out.name,
            show_progress=show,
        )
    clock.lap("final_report")
    if own_val is None and len(bundle.modalities) > 1:
        remedy = laziness_remedy(config.strategy, config.trainer)
        report["diagnosis"] = laziness_report(bundle.train, bundle.test, report["per_modality"], bundle.task, remedy)
        clock.lap("diagnosis")
    if config.eval.representation:
        say("representation: linear probes on frozen features, retrieval and matching on test", show)
        train_loader = _loader(bundle.train, bundle, config)
        report["representation"] = representation_report(
            strategy.embed, strategy.match, train_loader, test_loader, device
        )
        clock.lap("representation")
    rows = wide_rows(out / "log.csv")
    chance = 1 / bundle.out_dim if bundle.task == "classification" else None
    plot_training_curves(rows, plots / "training_curves.png", run_name=out.name, selected_epoch=selected["epoch"])
    plot_modality_accuracy(
        rows, plots / "modality_accuracy.png", run_name=out.name, selected_epoch=selected["epoch"], chance=chance
    )
    clock.lap("plots")
    metrics = {
        "task": bundle.task,
        "strategy": config.strategy["name"],
        "seed": config.trainer.seed,
        "params": sum(p.numel() for p in strategy.model.parameters()),
        "train_seconds": round(summary["train_seconds"], 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "timing": clock.report(),
        "steps": summary["steps"],
        "epochs": summary["epochs"],
        "train_examples": len(bundle.train),
        "device": str(device),
        "selected": selected,
        "val": val,
        "test": report.pop("metrics"),
        **report,
        **provenance(),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return world.broadcast(metrics)


def load_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any], Any]:
    """Rebuilds a finished or checkpointed run's config, data info and strategy with its best weights."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "run.json").is_file():
        raise ConfigError(f"{run_dir}: not a polymodal run directory (config.yaml or run.json missing)")
    manager = CheckpointManager(run_dir / "checkpoints")
    if not (manager.folder / "best.json").is_file():
        raise ConfigError(f"{run_dir}/checkpoints: no checkpoints (the run has not finished an epoch)")
    config = validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    info = _read_run_info(run_dir / "run.json")
    try:
        tensors, _ = manager.load("best")
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    out_dim = len(info["class_names"]) if info["class_names"] else 1
    model = build_model(config.model, shapes, out_dim)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{manager.folder}/best.safetensors: does not match the run's config.yaml ({first})"
        ) from None
    model.eval()
    strategy = STRATEGIES.build(config.strategy, model=model, data=DataSpec.from_info(info))
    return config, info, strategy


def _read_run_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({' '.join(str(err).split())})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path}: not a polymodal run.json (expected a JSON object)")
    missing = [k for k in ("task", "modalities", "shapes", "dtypes", "class_names") if k not in info]
    if missing:
        raise ConfigError(f"{path}: not a polymodal run.json (missing {', '.join(missing)})")
    return info


def evaluate_saved_run(run_dir: Path, split: str = "test", data: str | Path | Dataset | None = None) -> dict[str, Any]:
    """Scores a run's selected weights on one of its splits, a new CSV manifest (same columns) or a dataset of
    polymodal samples (``polymodal.data.memory``; inputs it lacks are missing).

    Returns:
        ``{"data": the split or manifest, "examples": N, split: metrics, ...}`` with the keys of ``metrics.json``
        (a manifest or dataset is scored as ``test``).
    """
    config, info, strategy = load_run(run_dir)
    if config.spaces is not None:  # a bridge run: retrieval in its unified space
        if data is not None:
            raise ConfigError(f"--data: a bridge run is evaluated on its own data's splits ({run_dir})")
        from polymodal.bridging import evaluate_bridge

        return evaluate_bridge(run_dir, split)
    modalities = list(info["modalities"])
    absent: list[str] = []
    show = config.trainer.progress
    if isinstance(data, (str, Path)):
        dataset = run_manifest(config, info, data, labeled=True)
        absent = [m for m, c in dataset.columns.items() if c in dataset.absent]
        modalities = [m for m in modalities if m not in absent]
        name, key = str(data), "test"
        bundle = None
    elif data is not None:
        dataset, absent = run_samples(data, info, labeled=True)
        modalities = [m for m in modalities if m not in absent]
        name, key, bundle = "data", "test", None
    elif config.eval.representation:  # as in metrics.json: the probes fit on the train split
        bundle = read_data(config, show)
        dataset = bundle.test if split == "test" else bundle.val
        name = key = split
    else:
        bundle = None
        say(f"reading data: the {split} split of {config.data.name}", show)
        dataset = build_split(config.data, config.trainer.seed, split, info, show)
        name = key = split
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    collate = Collate(shapes, {m: getattr(torch, d) for m, d in info["dtypes"].items()})
    loader = DataLoader(dataset, batch_size=config.data.eval_batch_size, collate_fn=collate)
    device = resolve_device(config.trainer.device)
    strategy.model.to(device)
    say(f"evaluating {run_dir}'s selected weights on {name} ({len(dataset)} samples)", show)
    own = strategy.evaluate(loader, device)
    if own is not None:
        return {"data": name, "examples": len(dataset), key: own.pop("metrics"), **own}
    report = full_report(
        strategy,
        loader,
        info["task"],
        modalities,
        info["class_names"],
        config.eval.noise_levels,
        config.eval.seed,
        device,
        None,
        show_progress=show,
    )
    if bundle is not None:
        train_loader = _loader(bundle.train, bundle, config)
        report["representation"] = representation_report(strategy.embed, strategy.match, train_loader, loader, device)
    if absent:
        report["missing_inputs"] = absent
    return {"data": name, "examples": len(dataset), key: report.pop("metrics"), **report}


def run_manifest(config: RunConfig, info: dict[str, Any], data: str | Path, labeled: bool) -> Any:
    """A new CSV manifest decoded for a trained run: its columns, adapter settings and classes.

    A column of the run that the file lacks, or leaves empty everywhere, is an input missing for every row (said on
    stderr); without ``labeled`` the target column is not needed.
    """
    columns = info.get("columns")
    if not columns:
        raise ConfigError(f"--data {data}: the run was not trained on a CSV manifest, so there are no columns to map")
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    by_column = {c: m for m, c in columns.items()}
    dataset = manifest_split(
        data, config.data, info["class_names"], by_column, config.trainer.progress, shapes=shapes, labeled=labeled
    )
    if len(dataset.absent) == len(columns):
        wanted = ", ".join(map(repr, columns.values()))
        raise DataError(f"{data}: none of the run's input columns ({wanted}) is in the file with a value")
    check_same_shapes(dataset, shapes, "the run's training data")
    for column in dataset.absent:
        modality = next(m for m, c in columns.items() if c == column)
        say(f"polymodal: note: {data}: no values in column {column!r} ({modality}): treated as missing")
    return dataset


def predict(run_dir: str | Path, data: str | Path | Dataset, batch_size: int = 256) -> list[dict[str, Any]]:
    """Predictions of a trained run for every row of a CSV manifest, or every sample of a dataset of polymodal
    samples (``polymodal.data.memory``); no target is needed.

    Columns of the run that the file lacks or leaves empty are missing inputs, as empty cells are.

    Returns:
        One dict per row, in order: ``id`` (the id column, else the row number; a sample's ``index``),
        ``prediction`` (class name, or value for regression), ``probabilities`` (class name -> probability;
        classification only) and ``present`` (the inputs the row had).
    """
    config, info, strategy = load_run(Path(run_dir))
    if config.spaces is not None:
        raise ConfigError(f"{run_dir}: a bridge run embeds and retrieves; it has no predictions (use embed/retrieve)")
    if isinstance(data, (str, Path)):
        dataset = run_manifest(config, info, data, labeled=False)
        ids = dataset.ids
    else:
        dataset, ids = run_samples(data, info, labeled=False)[0], None
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    collate = Collate(shapes, {m: getattr(torch, d) for m, d in info["dtypes"].items()})
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    device = resolve_device(config.trainer.device)
    strategy.model.to(device).eval()
    classes = info["class_names"]
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for batch in loader:
            outputs = strategy.predict(move_to(batch, device)).float().cpu()
            present = {m: batch["present"][m] for m in info["modalities"] if m in batch["present"]}
            for i, index in enumerate(batch["index"].tolist()):
                row: dict[str, Any] = {"id": ids[index] if ids is not None else index}
                if info["task"] == "classification":
                    probs = torch.softmax(outputs[i], dim=-1)
                    row["prediction"] = classes[int(probs.argmax())]
                    row["probabilities"] = {c: float(p) for c, p in zip(classes, probs, strict=True)}
                else:
                    row["prediction"] = float(outputs[i].reshape(-1)[0])
                row["present"] = [m for m, p in present.items() if bool(p[i])]
                rows.append(row)
    return rows


def write_predictions(rows: list[dict[str, Any]], out: str | Path) -> None:
    """Writes :func:`predict`'s rows as CSV atomically: id, prediction, one ``p_<class>`` column per class,
    present (inputs joined by ``;``)."""
    classes = list(rows[0].get("probabilities", {})) if rows else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "prediction", *(f"p_{c}" for c in classes), "present"])
    for row in rows:
        probs = [f"{row['probabilities'][c]:.6f}" for c in classes]
        writer.writerow([row["id"], row["prediction"], *probs, ";".join(row["present"])])
    atomic_write_text(Path(out), buffer.getvalue())


def embed_inputs(run_dir: Path, modality: str, inputs: list[str], out: Path) -> tuple[int, int]:
    """Embeds inputs of one modality with the run's encoder and saves an (N, D) float32 ``.npy`` atomically."""
    features = embed(run_dir, modality, inputs)
    buffer = io.BytesIO()
    np.save(buffer, features)
    atomic_write_bytes(out, buffer.getvalue())
    return tuple(features.shape)  # type: ignore[return-value]


def embed(run_dir: Path, modality: str, inputs: list[Any], batch_size: int = 256) -> np.ndarray:
    """Embeds inputs of one modality (file paths, strings for text, or tensors shaped like one training input) with
    the run's encoder.

    A bridge run (``polymodal bridge``) embeds into its unified space, through whichever of its spaces has the
    modality.

    Returns:
        (N, D) float32 embeddings, computed ``batch_size`` inputs at a time.
    """
    check_modality(modality, "--modality")
    config, _, strategy = load_run(run_dir)
    if config.spaces is not None:
        from polymodal.bridging import load_unified_space

        return load_unified_space(run_dir).embed_items(modality, inputs).numpy()
    if modality not in strategy.model.modalities:
        raise ConfigError(
            f"--modality {modality}: the run has no {modality} encoder (it has: {', '.join(strategy.model.modalities)})"
        )
    parts = []
    for batch in item_batches(config.data, modality, inputs, batch_size):
        with torch.no_grad():
            parts.append(model_embeddings(strategy.model, batch["inputs"], batch["lengths"])[modality].float().numpy())
    return np.concatenate(parts)


def model_embeddings(model: Any, inputs: dict[str, Any], lengths: dict[str, Any] | None) -> dict[str, Any]:
    """modality -> (B, D) features of a model's encoders, projected into its shared space when it has one
    (``contrastive``: a contrastive run's ``MultimodalModel``, MoMo)."""
    features = model.encode(inputs, lengths)
    return model.project(features) if getattr(model, "contrastive", False) else features


def item_batches(data: Any, modality: str, items: list[Any], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Collated batches of raw inputs of one modality (file paths, or strings for text), converted with the
    adapters of a run's ``DataConfig``; tensors are taken as they are (model-ready inputs)."""
    convert = adapter(adapter_kind(modality), getattr(data, adapter_kind(modality))).read
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        inputs = [x if isinstance(x, torch.Tensor) else convert(x) for x in chunk]
        yield Collate()([{"inputs": {modality: x}, "target": 0, "index": i} for i, x in enumerate(inputs)])
