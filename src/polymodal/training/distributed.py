"""Multi-process training under ``torchrun``: the process group's set-up and teardown, and the few collectives the
Trainer needs.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`distributed_session` reads them, opens the
process group (NCCL on CUDA, gloo on CPU) and closes it again. Without them every call here is a no-op, so a
single-process run goes through the same code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Args:
        rank: global rank (0 writes the run directory).
        size: number of processes.
        local_rank: rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """The device this rank uses: its own GPU on CUDA."""
        return torch.device("cuda", self.local_rank) if self.active and device.type == "cuda" else device

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replaces ``tensor`` in place by its mean over ranks and returns it."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(self.size)
        return tensor

    def all_true(self, flag: bool | torch.Tensor, device: torch.device) -> bool:
        """Whether ``flag`` holds on every rank."""
        if not self.active:
            return bool(flag)
        value = torch.as_tensor(flag, dtype=torch.int32, device=device).reshape(1).clone()
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def max(self, value: int, device: torch.device) -> int:
        """The largest ``value`` over ranks."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def union(self, names: list[str]) -> list[str]:
        """Every name any rank holds, in one order on every rank (rank 0's order first)."""
        if not self.active:
            return names
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, names)
        return list(dict.fromkeys(n for part in gathered for n in part))

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object produced by this program, never read from disk) on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean_gradients_(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Averages the gradients of ``parameters`` over ranks, in one flat buffer (one collective per step).

        A parameter without a gradient on this rank counts as a zero gradient; it keeps ``grad=None`` only if it
        has none on every rank, so that every rank's optimizer takes the same step.
        """
        if not self.active:
            return
        params = [p for p in parameters if p.requires_grad]
        if not params:
            return
        flags = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([flags.to(grads[0].dtype), *(g.reshape(-1) for g in grads)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        used, flat = flat[: len(params)] > 0, flat[len(params) :] / self.size
        offset = 0
        for p, g, has_grad in zip(params, grads, used.tolist(), strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype) if has_grad else None
            offset += n


def current_world() -> World:
    """The world ``torchrun`` describes in the environment (a single process when it describes none)."""
    return World(
        rank=int(os.environ.get("RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


@contextmanager
def distributed_session(device: torch.device) -> Iterator[World]:
    """Opens the process group for the duration of a run (NCCL on CUDA, gloo on CPU) and always closes it.

    Args:
        device: the device the run asked for; selects the backend.

    Yields:
        This process's :class:`World`.
    """
    world = current_world()
    if not world.active or dist.is_initialized():
        yield world
        return
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)
    try:
        yield world
    finally:
        dist.destroy_process_group()


__all__ = ["World", "current_world", "distributed_session"]
