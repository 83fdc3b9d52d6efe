"""The one training loop. A strategy owns what a step computes; the Trainer runs it, checkpoints and logs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.data.collate import move_to
from polymodal.errors import ConfigError, TrainingError
from polymodal.eval.selection import higher_is_better
from polymodal.progress import duration, progress, say
from polymodal.training.checkpoint import (
    CheckpointManager,
    flatten_optimizer,
    rng_state,
    set_rng_state,
    unflatten_optimizer,
)
from polymodal.training.config import TrainerConfig
from polymodal.training.distributed import World
from polymodal.training.log import CsvLog, TensorBoardLog
from polymodal.training.setup import EpochSampler, build_optimizer, build_scheduler, resolve_device, seed_everything


class Trainer:
    """Runs a strategy over a dataset for some epochs, with validation-based selection, checkpoints and resume.

    Checkpoints are written at every epoch end, every ``checkpoint_every`` steps, and after ``checkpoint_minutes``
    of training without one, so a long first epoch can be resumed too. With ``progress``, the main process prints a
    stage line, a progress bar (or plain lines) per epoch and one summary line per epoch on stderr.

    Args:
        strategy: owns ``model``, ``step(batch)``, ``param_groups()``, hooks and ``state_dict()``.
        config: a ``TrainerConfig``.
        run_dir: where ``checkpoints/`` and ``log.csv`` go.
        collate: the batch collate function.
        batch_size: training batch size.
        evaluate: called with the strategy at the end of every ``config.validate_every``-th epoch and of the last;
            returns validation metrics (the weights of the best validated epoch are selected).
        num_workers: DataLoader workers.
        world: this process's place under ``torchrun`` (default: a single process). Each rank trains on its shard
            of every epoch with ``batch_size`` samples per step; rank 0 alone validates, checkpoints and logs.
    """

    def __init__(
        self,
        strategy: Any,
        config: TrainerConfig,
        run_dir: Path,
        collate: Callable,
        batch_size: int,
        evaluate: Callable[[Any], dict[str, float]] | None = None,
        num_workers: int = 0,
        world: World | None = None,
    ) -> None:
        self.strategy = strategy
        self.model: torch.nn.Module = strategy.model
        self.config = config
        self.run_dir = Path(run_dir)
        self.collate = collate
        self.batch_size = batch_size
        self.evaluate = evaluate
        self.num_workers = num_workers
        self.world = world or World()
        self.device = self.world.device(resolve_device(config.device))
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", keep=config.keep_checkpoints)
        self.amp = config.amp and self.device.type == "cuda"
        self.minimise = not higher_is_better(config.selection_metric)
        # Position and bookkeeping; all of it is saved in every checkpoint.
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.best: float | None = None
        self.train_seconds = 0.0
        # Sums of the step outputs since the last log row (and their count, ``_n``); saved so that a resumed run
        # logs the same averages as an uninterrupted one when checkpoints fall between log rows.
        self.running: dict[str, float] = {}
        # The same sums over the whole epoch (synced log windows), for the epoch line; saved like ``running``.
        self.epoch_running: dict[str, float] = {}
        self.log: CsvLog | None = None
        self.tensorboard: TensorBoardLog | None = None
        self.last_save = time.monotonic()
        self.show = config.progress and self.world.is_main
        # The epoch and step whose weights ``load_best`` loaded.
        self.selected: dict[str, int] | None = None

    # ---------------------------------------------------------------- checkpoints
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optim_tensors, optim_meta = flatten_optimizer(self.optimizer.state_dict())
        rng_tensors, rng_meta = rng_state()
        state = {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "best": self.best,
            "train_seconds": self.train_seconds,
            "running": self.running,
            "epoch_running": self.epoch_running,
            "log_rows": self.log.rows if self.log else 0,
            "optimizer": optim_meta,
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_meta,
            "strategy": self.strategy.state_dict(),
        }
        return {**tensors, **optim_tensors, **rng_tensors}, state

    def save(self) -> Path | None:
        """Writes a step checkpoint (rank 0 only; every rank must call it). Returns its path on rank 0."""
        self._sync_running()
        self.last_save = time.monotonic()
        if not self.world.is_main:
            return None
        tensors, state = self._state()
        return self.checkpoints.save(f"ckpt-{self.step:08d}", tensors, state)

    def _restore(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        # The optimizer casts its state to each parameter's device and dtype itself (keeping Adam's ``step`` on CPU).
        self.optimizer.load_state_dict(unflatten_optimizer(tensors, state["optimizer"]))
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(tensors, state["rng"])
        self.strategy.load_state_dict(state["strategy"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best, self.train_seconds = state["best"], state["train_seconds"]
        self.running = dict(state["running"])
        self.epoch_running = dict(state.get("epoch_running", {}))  # absent from checkpoints of older versions

    def _save_best(self, metric: float, metrics: dict[str, float]) -> None:
        self.best = metric
        if not self.world.is_main:
            return
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        # The best weights are small and rewritten whole; same atomic writer as step checkpoints. ``epoch`` counts
        # from 1, as in log.csv; ``metrics`` are the validation metrics of these weights.
        state = {"step": self.step, "epoch": self.epoch + 1, "metric": metric, "metrics": metrics}
        self.checkpoints.save("best", tensors, state)

    # ---------------------------------------------------------------- loop
    def _non_finite(self, what: str, value: torch.Tensor | None) -> TrainingError:
        last = self.checkpoints.step_checkpoints()
        kept = last[-1].with_suffix(".safetensors") if last else "none"
        shown = value.item() if value is not None and not torch.isfinite(value) else "on another rank"
        return TrainingError(
            f"non-finite {what} ({shown}) at step {self.step + 1} (epoch {self.epoch + 1}); "
            f"stopped, last good checkpoint: {kept}"
        )

    def _train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One batch: an optimizer update per part the strategy splits it into, then one scheduler step.

        Returns each output's mean over the parts that reported it.
        """
        batch = move_to(batch, self.device)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        parts: list[Any] = self.strategy.substeps(batch)
        # Under torchrun a strategy may split ranks' batches into different numbers of parts (e.g. the tasks present
        # in each): a rank with fewer parts takes idle updates (``None``) so that every rank steps alike.
        parts += [None] * (self.world.max(len(parts), self.device) - len(parts))
        for part in parts:
            for k, v in self._update(part).items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
        self.scheduler.step()
        return {k: sums[k] / counts[k] for k in sums}

    def _update(self, part: Any) -> dict[str, float]:
        """One optimizer update on ``part``; ``None`` is an idle update under torchrun (zero gradients here)."""
        out: dict[str, torch.Tensor] = {}
        if part is not None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = self.strategy.step(part)
        loss = out.get("loss")
        # Collective under torchrun: a non-finite loss on one rank stops every rank at the same step.
        if not self.world.all_true(loss is None or bool(torch.isfinite(loss)), self.device):
            raise self._non_finite("loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()
            self.strategy.after_backward()
        # Gradients are averaged by hand rather than by wrapping the model in DistributedDataParallel: strategies
        # call submodules directly (``model.encoders[m]``, ``model.encode``) and train a different parameter subset
        # per substep, which DDP's forward hooks and unused-parameter detection do not follow. One flat all-reduce
        # after every backward (and after the strategy's gradient hook, whose state may differ between ranks) gives
        # every rank the same gradients, hence the same optimizer step, whatever the strategy does; the price (no
        # overlap of communication with backward) is small at these model sizes.
        self.world.mean_gradients_(self.model.parameters())
        # With no clipping the norm is still computed: a finite loss can have non-finite gradients.
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip or math.inf)
        if not torch.isfinite(norm):
            raise self._non_finite("gradient norm", norm)
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in out.items()}

    def _accumulate(self, out: dict[str, float]) -> None:
        self.step += 1
        self.batch_in_epoch += 1
        for k, v in out.items():
            self.running[k] = self.running.get(k, 0.0) + v
        self.running["_n"] = self.running.get("_n", 0.0) + 1

    def _sync_running(self) -> None:
        """Under torchrun, replaces the running sums by their mean over ranks (every rank must call it).

        Done before each log row and each checkpoint, so a resumed run (whose ranks all restore rank 0's sums)
        continues from the same numbers on every rank.
        """
        if not self.world.active or not self.running:
            return
        # A rank that had no part of some kind (a task absent from its batches) lacks that key: it counts as 0.
        keys = self.world.union(list(self.running))
        # On the run's device: NCCL reduces CUDA tensors only.
        sums = torch.tensor([self.running.get(k, 0.0) for k in keys], dtype=torch.float64, device=self.device)
        values = self.world.mean_(sums).cpu()
        self.running = dict(zip(keys, values.tolist(), strict=True))

    def _write(self, values: dict[str, float]) -> None:
        """One row of values in every log the run keeps (rank 0 only has logs)."""
        for log in (self.log, self.tensorboard):
            if log:
                log.write(self.step, self.epoch + 1, values)

    def _log_train(self, bar: Any) -> None:
        """Writes the mean of each step output since the last write (nothing if no step ran)."""
        self._sync_running()
        n = self.running.pop("_n", 0.0)
        if not n:
            return
        for k, v in [*self.running.items(), ("_n", n)]:
            self.epoch_running[k] = self.epoch_running.get(k, 0.0) + v
        values = {f"train_{k}": v / n for k, v in self.running.items()}
        values["lr"] = float(self.scheduler.get_last_lr()[0])
        self._write(values)
        bar.set_postfix(loss=f"{values['train_loss']:.4f}")
        self.running = {}

    def _checkpoint_due(self, log_row: bool) -> bool:
        every, minutes = self.config.checkpoint_every, self.config.checkpoint_minutes
        if every and self.step % every == 0:
            return True
        # The clock is read at log rows only: under torchrun the ranks then agree, in one small collective, to save
        # when any of them is due (their clocks differ a little).
        if not (minutes and log_row):
            return False
        return bool(self.world.max(int(time.monotonic() - self.last_save >= 60 * minutes), self.device))

    def _epoch_line(self, metrics: dict[str, float], better: bool, seconds: float) -> str:
        """``epoch 3/10  train loss 0.41  val accuracy 0.912 (best)  image_alone 0.8  12.3 s``."""
        parts = [f"epoch {self.epoch + 1}/{self.config.epochs}"]
        n = self.epoch_running.get("_n", 0.0)
        if n and "loss" in self.epoch_running:
            parts.append(f"train loss {self.epoch_running['loss'] / n:.4g}")
        selection = self.config.selection_metric
        if selection in metrics:
            parts.append(f"val {selection} {metrics[selection]:.4g}" + (" (best)" if better else ""))
        # Other validation metrics, their names shortened by the selection metric's (image_alone_accuracy).
        parts += [f"{k.removesuffix('_' + selection)} {v:.4g}" for k, v in metrics.items() if k != selection]
        return "  ".join([*parts, duration(seconds)])

    def _validates(self) -> bool:
        """Whether the current epoch ends with validation: every ``validate_every``-th epoch, and the last one."""
        done = self.epoch + 1
        return self.evaluate is not None and (done % self.config.validate_every == 0 or done == self.config.epochs)

    def _end_epoch(self, started: float) -> None:
        metrics: dict[str, float] = {}
        if self._validates() and self.evaluate is not None:
            self.model.eval()
            # Validation leaves torch's random state as it found it (a DataLoader draws a seed per iteration), so
            # what is trained does not depend on how often, or how, it is validated.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                # Rank 0 validates on the whole split while the others wait for its numbers: every rank selects alike.
                metrics = self.world.broadcast(self.evaluate(self.strategy) if self.world.is_main else {})
            self.model.train()
        self._write({f"val_{k}": v for k, v in metrics.items()})
        value = metrics.get(self.config.selection_metric)
        if value is None and metrics:
            raise ConfigError(
                f"trainer.selection_metric: {self.config.selection_metric!r} is not among the validation metrics "
                f"({', '.join(sorted(metrics))})"
            )
        better = value is not None and (
            self.best is None or (value < self.best if self.minimise else value > self.best)
        )
        if better or (value is None and self.evaluate is None):
            self._save_best(value if value is not None else float(self.epoch), metrics)
        say(self._epoch_line(metrics, better, time.perf_counter() - started), self.show)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_running = {}
        self.save()

    def fit(self, dataset: Dataset, resume: bool = False) -> dict[str, Any]:
        """Trains for ``config.epochs`` epochs (continuing from the latest checkpoint when ``resume``)."""
        main = self.world.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model.to(self.device).train()
        self.optimizer = build_optimizer(self.strategy.param_groups(), self.config.optimizer)
        rank, size = self.world.rank, self.world.size
        batches = self.strategy.batch_sampler(dataset, self.batch_size, self.config.seed, rank, size)
        if batches is None:
            sampler = EpochSampler(len(cast(Sized, dataset)), self.config.seed, rank, size)
            steps_per_epoch, skip_unit = math.ceil(len(sampler) / self.batch_size), self.batch_size
            batching: dict[str, Any] = {"batch_size": self.batch_size, "sampler": sampler}
        else:
            sampler, steps_per_epoch, skip_unit = batches, len(batches), 1
            batching = {"batch_sampler": batches}
        self.scheduler = build_scheduler(self.optimizer, self.config.scheduler, steps_per_epoch * self.config.epochs)
        resume_rows = None
        if resume:
            latest = self.checkpoints.load_latest()
            if latest is None:
                raise TrainingError(f"{self.checkpoints.folder}: no usable checkpoint to resume from")
            tensors, state, path = latest
            self._restore(tensors, state)
            self.world.barrier()  # every rank has read the checkpoint before rank 0 tidies the folder
            if main:
                self.checkpoints.remove_partial()
            resume_rows = state["log_rows"]
            say(f"resuming from {path.stem} (epoch {self.epoch + 1}, step {self.step})", self.show)
        if main:
            self.log = CsvLog(self.run_dir / "log.csv", resume_rows)
            if "tensorboard" in self.config.log_to:
                # Events at or after the next step, left by an interrupted run, are discarded when read.
                purge = self.step + 1 if resume else None
                self.tensorboard = TensorBoardLog(self.run_dir / "tensorboard", purge)
        say(
            f"training: {self.config.epochs} epochs of {steps_per_epoch} steps ({len(cast(Sized, dataset))} samples, "
            f"batches of {self.batch_size}{f' x {size} processes' if size > 1 else ''}) on {self.device}",
            self.show,
        )
        # The loader gets its own generator: with the default one, each new iterator draws its base seed from the
        # global torch RNG, and a run resumed mid-epoch would draw once more than the uninterrupted run.
        loader_generator = torch.Generator()
        loader = DataLoader(
            dataset,
            **batching,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=loader_generator,
        )
        self.last_save = time.monotonic()
        try:
            while self.epoch < self.config.epochs:
                self._run_epoch(loader, sampler, skip_unit)
        finally:
            if self.tensorboard:
                self.tensorboard.close()
        self.world.barrier()  # rank 0's last checkpoint and best weights are on disk before anyone reads them
        return {"steps": self.step, "epochs": self.epoch, "best": self.best, "train_seconds": self.train_seconds}

    def _run_epoch(self, loader: DataLoader, sampler: Any, skip_unit: int) -> None:
        """The rest of the current epoch (all of it unless resumed mid-epoch), then its validation."""
        self.strategy.on_epoch_start(self.epoch)
        sampler.set_position(self.epoch, self.batch_in_epoch * skip_unit)
        # Worker seeds depend only on (seed, epoch), like the sample order.
        loader.generator.manual_seed(self.config.seed * 100_003 + self.epoch)
        epoch_started = started = time.perf_counter()
        desc = f"epoch {self.epoch + 1}/{self.config.epochs}"
        # Not left on a terminal: the epoch line takes its place.
        bar = progress(loader, desc=desc, unit="batch", enabled=self.show, leave=False)
        for batch in bar:
            self._accumulate(self._train_step(batch))
            log_row = self.step % self.config.log_every == 0
            if log_row:
                self._log_train(bar)
            if self._checkpoint_due(log_row):
                self.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                self.save()
        bar.close()
        self.train_seconds += time.perf_counter() - started
        self._log_train(bar)  # the epoch's last, partial window
        self._end_epoch(epoch_started)

    def load_best(self) -> dict[str, int]:
        """Loads the selected (best validation) weights into the model.

        Returns:
            ``{"epoch": E, "step": S}``: the epoch (from 1) and step after which they were saved (also
            ``self.selected``). Their validation metrics, when they were validated, are ``self.selected_metrics``
            (empty otherwise).
        """
        tensors, state = self.checkpoints.load("best")
        self.model.load_state_dict(tensors)
        self.selected = {"epoch": state["epoch"], "step": state["step"]}
        self.selected_metrics: dict[str, float] = dict(state.get("metrics", {}))  # absent before this version
        return self.selected


__all__ = ["EpochSampler", "Trainer", "resolve_device", "seed_everything"]
