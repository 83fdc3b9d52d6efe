"""``polymodal bench overhead``: the Trainer against a hand-written PyTorch loop of the same model, data and optimizer.

Both loops run in one process with the same thread count, the same number of steps and the same data, in pairs
whose order alternates; the ratio is the median over pairs of (Trainer time / plain time), so that a drift of a
shared machine's load hits both members of a pair alike. The Trainer runs as in
a real run (CSV log, end-of-epoch checkpoint and best weights) but without validation, which the plain loop lacks.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from polymodal.config import load_config
from polymodal.data.collate import Collate, move_to
from polymodal.data.sources import build_data
from polymodal.errors import ConfigError
from polymodal.runs.train import build_strategy
from polymodal.training import Trainer, seed_everything
from polymodal.training.setup import build_optimizer, build_scheduler, resolve_device

BENCH_MODELS = {"demo": "avdigits-joint", "avmnist": "avmnist-concat"}


class _Timed(Dataset):
    """Adds the seconds spent in the wrapped dataset's ``__getitem__`` and in collate to ``seconds``."""

    def __init__(self, dataset: Dataset, collate: Collate) -> None:
        self.dataset, self.collate_fn = dataset, collate
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, index: int) -> Any:
        started = time.perf_counter()
        sample = self.dataset[index]
        self.seconds += time.perf_counter() - started
        return sample

    def collate(self, samples: list[Any]) -> Any:
        started = time.perf_counter()
        batch = self.collate_fn(samples)
        self.seconds += time.perf_counter() - started
        return batch


def _plain_loop(strategy: Any, data: _Timed, config: Any, batch_size: int, device: torch.device) -> float:
    """What a user would write by hand: shuffle, forward, cross-entropy, backward, clip, AdamW/SGD, schedule."""
    model = strategy.model.to(device).train()
    optimizer = build_optimizer(strategy.param_groups(), config.optimizer)
    steps = len(data) // batch_size
    scheduler = build_scheduler(optimizer, config.scheduler, steps)
    generator = torch.Generator().manual_seed(config.seed)
    loader: DataLoader = DataLoader(data, batch_size, shuffle=True, collate_fn=data.collate, generator=generator)
    started = time.perf_counter()
    for batch in loader:
        batch = move_to(batch, device)
        outputs = model(batch["inputs"], batch["present"], batch["lengths"])
        loss = F.cross_entropy(outputs, batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
    return time.perf_counter() - started


def _trainer_loop(strategy: Any, data: _Timed, config: Any, batch_size: int, folder: Path) -> float:
    trainer = Trainer(strategy, config, folder, data.collate, batch_size)
    started = time.perf_counter()
    trainer.fit(data)
    return time.perf_counter() - started


def overhead(model: str, steps: int, repeats: int, overrides: list[str]) -> dict[str, Any]:
    """Times ``steps`` training steps of the Trainer and of a plain loop, ``repeats`` times each, alternating.

    Args:
        model: a key of ``BENCH_MODELS`` (``demo``: avdigits-joint; ``avmnist``: avmnist-concat, needs
            ``data.root=...``).
        steps: training steps per timed run (one epoch of ``steps * batch_size`` samples).
        repeats: timed runs of each loop (after one untimed warm-up of each).
        overrides: recipe overrides (``key.path=value``).

    Returns:
        One result row: ``model``, ``trainer_step_s``, ``plain_step_s``, ``ratio``, ``data_wait_share`` (of the
        Trainer's time) and the settings and environment that produced them.
    """
    if model not in BENCH_MODELS:
        raise ConfigError(f"--model: unknown model {model!r} (known: {', '.join(BENCH_MODELS)})")
    fixed = [
        "trainer.epochs=1",
        "trainer.progress=false",
        "trainer.checkpoint_every=0",
        "trainer.grad_clip=1.0",
        # The plain loop has no modality dropout: the Trainer's strategy computes the same loss without it.
        "strategy.modality_dropout=0.0",
    ]
    config = load_config(BENCH_MODELS[model], [*fixed, *overrides])
    if config.strategy["name"] != "joint" or config.data.task != "classification":
        raise ConfigError(f"{model}: the plain loop is written for joint supervised classification")
    bundle = build_data(config.data, config.trainer.seed, progress=False)
    batch_size = config.data.batch_size
    train_size = len(cast(Sized, bundle.train))
    if train_size < steps * batch_size:
        raise ConfigError(f"--steps {steps}: the training split has {train_size} samples, fewer than needed")
    device = resolve_device(config.trainer.device)
    subset = Subset(bundle.train, list(range(steps * batch_size)))

    times: dict[str, list[float]] = {"trainer": [], "plain": []}
    waits: dict[str, list[float]] = {"trainer": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats + 1):
            order = ("trainer", "plain") if repeat % 2 == 0 else ("plain", "trainer")
            for name in order:
                seed_everything(config.trainer.seed)
                strategy = build_strategy(config, bundle)
                data = _Timed(subset, bundle.collate())
                if name == "plain":
                    seconds = _plain_loop(strategy, data, config.trainer, batch_size, device)
                else:
                    seconds = _trainer_loop(strategy, data, config.trainer, batch_size, Path(tmp) / f"{repeat}")
                if repeat:  # the first round warms up allocators and caches
                    times[name].append(seconds)
                    waits[name].append(data.seconds / seconds)
    trainer_step = statistics.median(times["trainer"]) / steps
    plain_step = statistics.median(times["plain"]) / steps
    ratios = [t / p for t, p in zip(times["trainer"], times["plain"], strict=True)]
    return {
        "model": model,
        "recipe": BENCH_MODELS[model],
        "trainer_step_s": round(trainer_step, 6),
        "plain_step_s": round(plain_step, 6),
        "ratio": round(statistics.median(ratios), 4),
        "data_wait_share": round(statistics.median(waits["trainer"]), 4),
        "plain_data_wait_share": round(statistics.median(waits["plain"]), 4),
        "pair_ratios": [round(r, 4) for r in ratios],
        "trainer_runs_s": [round(t, 6) for t in times["trainer"]],
        "plain_runs_s": [round(t, 6) for t in times["plain"]],
        "steps": steps,
        "repeats": repeats,
        "batch_size": batch_size,
        "num_workers": config.data.num_workers,
        "seed": config.trainer.seed,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "overrides": overrides,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


__all__ = ["BENCH_MODELS", "overhead"]
