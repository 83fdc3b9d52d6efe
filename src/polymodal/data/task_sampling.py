"""Single-task batches in a per-step task order: round-robin or proportional to each task's size (MultiModel).

The paper (arXiv 1706.05137, section 3) trains each step on a batch of one task. :class:`TaskBatchSampler` yields such
batches as index lists, in an order that depends only on (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import Sampler

MODES = ("round_robin", "proportional")


class TaskTable(Protocol):
    """A dataset whose samples each belong to one task: ``tasks`` (N,) holds every sample's task id."""

    tasks: Tensor


class TaskBatchSampler(Sampler[list[int]]):
    """Batches of one task each; an epoch has as many batches as the tasks' batches together.

    ``proportional`` shuffles every task's batches together, so a task is drawn in proportion to its size.
    ``round_robin`` takes the tasks in turn; a task that runs out starts again on a fresh shuffle of its examples, so
    small tasks are revisited more often than their size alone would give.

    Args:
        tasks: (N,) task id of every example.
        batch_size: examples per batch (a task's last batch of a pass may be smaller).
        seed: run seed.
        mode: ``round_robin`` or ``proportional``.
        rank: this process's rank under ``torchrun``.
        world_size: number of processes; each rank takes every ``world_size``-th batch of the same order (padded
            with its head so every rank runs as many steps).
    """

    def __init__(
        self, tasks: Tensor, batch_size: int, seed: int, mode: str, rank: int = 0, world_size: int = 1
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown task sampling {mode!r} (known: {', '.join(MODES)})")
        self.members = {int(t): (tasks == t).nonzero().flatten() for t in tasks.unique()}
        self.batch_size, self.seed, self.mode = batch_size, seed, mode
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Next iteration yields ``epoch``'s batches without its first ``skip`` batches."""
        self.epoch, self.skip = epoch, skip

    def _batches_of(self, members: Tensor, generator: torch.Generator) -> list[list[int]]:
        order = members[torch.randperm(len(members), generator=generator)].tolist()
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _epoch(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        per_task = {t: self._batches_of(m, generator) for t, m in sorted(self.members.items())}
        total = sum(len(b) for b in per_task.values())
        if self.mode == "proportional":
            flat = [batch for batches in per_task.values() for batch in batches]
            return [flat[i] for i in torch.randperm(total, generator=generator).tolist()]
        queues = {t: list(b) for t, b in per_task.items()}
        out: list[list[int]] = []
        while len(out) < total:
            for task in per_task:
                if not queues[task]:
                    queues[task] = self._batches_of(self.members[task], generator)
                out.append(queues[task].pop(0))
        return out[:total]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch()
        if self.world_size > 1:
            batches = (batches + batches[: -len(batches) % self.world_size])[self.rank :: self.world_size]
        return iter(batches[self.skip :])

    def __len__(self) -> int:
        total = sum(math.ceil(len(m) / self.batch_size) for m in self.members.values())
        return math.ceil(total / self.world_size) - self.skip
