"""Train runs: build data, model and strategy from a validated ``RunConfig``, train them, and report.

``train_run`` is the function behind ``polymodal train``: it hands data, model and strategy to the Trainer and
writes the run directory (:class:`~polymodal.runs.rundir.RunDir`) with ``log.csv``, ``checkpoints/``, ``plots/`` and
the final report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sized
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.config import RunConfig, absolute_paths, check_data
from polymodal.data.augment import AugmentedCollate
from polymodal.data.feature_cache import prepare_feature_cache
from polymodal.data.fitting import describe_preprocessing
from polymodal.data.sources import DataBundle, build_data, fit_data_settings
from polymodal.errors import ConfigError
from polymodal.eval.diagnosis import laziness_remedy, laziness_report
from polymodal.eval.evaluate import evaluate_split, full_report, main_metrics, validation_metrics
from polymodal.eval.plots import plot_modality_accuracy, plot_training_curves
from polymodal.eval.representation import representation_report
from polymodal.eval.selection import regression_counterpart
from polymodal.models import adopt_adapter_settings, build_model
from polymodal.progress import duration, say
from polymodal.runs.provenance import PhaseClock
from polymodal.runs.rundir import RunDir
from polymodal.strategies import STRATEGIES
from polymodal.training import Trainer, seed_everything
from polymodal.training.checkpoint import CheckpointManager
from polymodal.training.distributed import World, distributed_session
from polymodal.training.log import check_tensorboard, wide_rows
from polymodal.training.setup import resolve_device


def build_strategy(config: RunConfig, bundle: DataBundle) -> Any:
    """Checks the config against the data's description, then builds the model for the data's shapes and the
    configured strategy around it."""
    check_data(config, bundle.spec)
    model = build_model(config.model, bundle.shapes, bundle.out_dim)
    return STRATEGIES.build(config.strategy, model=model, data=bundle.spec)


def eval_loader(dataset: Dataset, bundle: DataBundle, config: RunConfig, collate: Any = None) -> DataLoader:
    """An evaluation loader over one split: in order, ``data.eval_batch_size``, ``collate`` (default: the bundle's)."""
    return DataLoader(
        dataset,
        batch_size=config.data.eval_batch_size,
        shuffle=False,
        collate_fn=collate or bundle.collate(),
        num_workers=config.data.num_workers,
    )


def split_report(
    strategy: Any,
    loader: DataLoader,
    device: Any,
    standard: Callable[[], dict[str, Any]],
    plots_dir: Path | None = None,
) -> tuple[dict[str, Any], bool]:
    """A split's report, and whether the strategy scored it itself: the one place that decides how a run is scored.

    The report is the strategy's own (``Strategy.evaluate``, e.g. multitask's per-task scores) when it gives one,
    else ``standard()``; both are ``{"metrics": {name: float}, ...}``.
    """
    own = strategy.evaluate(loader, device, plots_dir)
    return (own, True) if own is not None else (standard(), False)


def fit_inputs(config: RunConfig) -> dict[str, Any]:
    """Sets the adapter settings a run's inputs are read with: first those that reused encoders (``from_run``) were
    trained with, then those fitted to the data files; returns what was fitted (a run's ``preprocessing``)."""
    adopt_adapter_settings(config)
    return fit_data_settings(config.data)


def read_data(config: RunConfig, show: bool) -> DataBundle:
    """``build_data`` between two stage lines: what is read, then the splits' sizes and the time it took."""
    files = [Path(getattr(config.data, k)).name for k in ("root", "train", "val", "test") if getattr(config.data, k)]
    say(f"reading data: {config.data.name}" + (f" ({', '.join(files)})" if files else ""), show)
    started = time.perf_counter()
    bundle = build_data(config.data, config.trainer.seed, show)
    train, val, test = (len(cast(Sized, split)) for split in (bundle.train, bundle.val, bundle.test))
    say(
        f"data: {train} train, {val} val, {test} test samples "
        f"({', '.join(bundle.modalities)}) in {duration(time.perf_counter() - started)}",
        show,
    )
    return bundle


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
    absolute_paths(config)
    clock = PhaseClock()
    device = resolve_device(config.trainer.device)
    with distributed_session(device) as world:
        run_dir = RunDir(out, world.is_main)
        checkpoints = CheckpointManager(run_dir.path / "checkpoints")
        # Before the resume check: a resumed run fits the same settings from the same files; reused encoders
        # (from_run) first bring the adapter settings they were trained with.
        fitted = fit_inputs(config)
        _selection_for_task(config, world.is_main)
        run_dir.check(config, resume)
        if resume and not checkpoints.step_checkpoints():
            raise ConfigError(f"{run_dir.path}/checkpoints: no checkpoint to resume from")
        if "tensorboard" in config.trainer.log_to:
            check_tensorboard()
        # The same seed on every rank: every rank starts from the same weights.
        seed_everything(config.trainer.seed, config.trainer.deterministic)
        bundle = read_data(config, config.trainer.progress and world.is_main) if data is None else data
        bundle.preprocessing = fitted or None
        clock.lap("data")
        train_size = len(cast(Sized, bundle.train))
        if config.data.batch_size > train_size and world.is_main:
            say(
                f"polymodal: warning: data.batch_size={config.data.batch_size} is more than the {train_size} "
                "training samples: one step per epoch (set a smaller data.batch_size)"
            )
        if config.trainer.progress and world.is_main and bundle.columns:
            shapes = {m: bundle.shapes[m] for m in bundle.modalities}
            say("inputs:\n" + describe_preprocessing(config.data, shapes, fitted), True)
        strategy = build_strategy(config, bundle)
        # A data column without an encoder is not an input of the model: no per-modality or missing-modality scores.
        bundle.modalities = [m for m in bundle.modalities if m in strategy.model.modalities]
        world.barrier()  # every rank has checked ``out`` before rank 0 creates it
        # A run that failed before its first checkpoint has nothing to resume: leave no half-written directory.
        with run_dir.writing(config, lambda: bool(checkpoints.step_checkpoints())):
            return _fit_and_report(config, run_dir, bundle, strategy, world.device(device), resume, world, clock)


def _fit_and_report(
    config: RunConfig,
    run_dir: RunDir,
    bundle: DataBundle,
    strategy: Any,
    device: torch.device,
    resume: bool,
    world: World,
    clock: PhaseClock,
) -> dict[str, Any]:
    out = run_dir.path
    run_dir.write_info(bundle.info())
    val_loader = eval_loader(bundle.val, bundle, config)
    started = time.perf_counter()
    # Frozen encoders' features, computed once (or found from an earlier run): the epochs read them, not raw inputs.
    cache = prepare_feature_cache(config, bundle, strategy.model, device, world.is_main, world.barrier)
    collate: Callable[[list[Any]], dict[str, Any]] = bundle.collate()
    train_set, epoch_val_loader = bundle.train, val_loader
    if cache is not None:
        train_set, collate = cache.dataset("train", bundle.train), cache.collate(collate)
        epoch_val_loader = eval_loader(cache.dataset("val", bundle.val), bundle, config, collate)

    def validate(strat: Any) -> dict[str, float]:
        def standard() -> dict[str, Any]:
            metrics = validation_metrics(
                strat,
                epoch_val_loader,
                bundle.task,
                bundle.modalities,
                config.eval.per_modality_every_epoch,
                device,
                config.trainer.progress,
            )
            return {"metrics": metrics}

        return split_report(strat, epoch_val_loader, device, standard)[0]["metrics"]

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
    test_loader = eval_loader(bundle.test, bundle, config)
    show = config.trainer.progress
    splits = "" if trainer.selected_metrics else f"val ({len(cast(Sized, bundle.val))} samples) and "
    say(
        f"evaluating the selected weights (epoch {selected['epoch']}, step {selected['step']}) on {splits}test "
        f"({len(cast(Sized, bundle.test))} samples)",
        show,
    )

    def standard_val() -> dict[str, Any]:
        # The selected weights were validated when they were saved: their validation metrics are not computed again.
        return {
            "metrics": main_metrics(trainer.selected_metrics)
            or evaluate_split(strategy.predict, val_loader, bundle.task, device, "val" if show else None)
        }

    def standard_test() -> dict[str, Any]:
        return full_report(
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

    val_report, own = split_report(strategy, val_loader, device, standard_val)
    report, _ = split_report(strategy, test_loader, device, standard_test, plots)
    val = val_report["metrics"]
    clock.lap("final_report")
    if not own and len(bundle.modalities) > 1:
        remedy = laziness_remedy(config.strategy, config.trainer)
        report["diagnosis"] = laziness_report(bundle.train, bundle.test, report["per_modality"], bundle.task, remedy)
        clock.lap("diagnosis")
    if config.eval.representation:
        say("representation: linear probes on frozen features, retrieval and matching on test", show)
        train_loader = eval_loader(bundle.train, bundle, config)
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
    report = {"timing": clock.report(), "val": val, "test": report.pop("metrics"), **report}
    metrics = run_dir.write_metrics(
        config, bundle.task, strategy.model, summary, started, len(cast(Sized, bundle.train)), device, selected, report
    )
    return world.broadcast(metrics)
