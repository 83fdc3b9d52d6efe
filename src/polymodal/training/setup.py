"""What a training run is set up with: seeds, the device, the epoch order, the optimizer and its schedule.

The Trainer uses these; ``polymodal bench overhead`` builds the same optimizer and schedule for its plain loop.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from polymodal.errors import TrainingError
from polymodal.training.config import OptimizerConfig, SchedulerConfig


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy and torch; optionally asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("trainer.device: cuda was asked for but no CUDA device is available")
    return torch.device(name)


class EpochSampler(Sampler[int]):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches.

    Under ``torchrun`` each rank takes every ``world_size``-th index of the same order, starting at its rank (the
    order is first padded with its own head to a multiple of ``world_size``, so every rank runs as many steps). Batch
    ``i`` of all ranks together is then batch ``i`` of a single process with a ``world_size`` times larger batch.

    Args:
        size: dataset length.
        seed: run seed.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.seed = size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Next iteration yields ``epoch``'s order without its first ``skip`` indices."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        if self.world_size > 1:
            padding = -self.size % self.world_size
            order = torch.cat([order, order[:padding]])[self.rank :: self.world_size]
        return iter(order[self.skip :].tolist())

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size) - self.skip


def build_optimizer(groups: list[dict[str, Any]], config: OptimizerConfig) -> torch.optim.Optimizer:
    # A group's lr_scale (an encoder with a learning rate of its own) multiplies the configured learning rate.
    groups = [{**g, "lr": config.lr * g["lr_scale"]} if "lr_scale" in g else g for g in groups]
    # foreach: one call per operation over every parameter instead of a Python loop over them (PyTorch's default on
    # CUDA only). The same arithmetic on each parameter, so the same weights bit for bit; 25 % faster per step on CPU.
    if config.name == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, foreach=True
        )
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: SchedulerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup, name = config.warmup_steps, config.name
    if config.warmup_fraction is not None:  # scaled to the run's length
        warmup = round(config.warmup_fraction * total_steps)
    elif warmup >= total_steps:
        print(
            f"polymodal: warning: trainer.scheduler.warmup_steps={warmup} but the run has only {total_steps} steps: "
            "the learning rate never reaches its set value (use trainer.scheduler.warmup_fraction=0.05)",
            file=sys.stderr,
            flush=True,
        )

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if name == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
