"""Two CPU processes (gloo) through the Trainer and through ``torchrun``: same steps on every rank, same result as
one process with the global batch, resume, and only rank 0 writing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from toys import ToyDataset, ToyModel, ToyStrategy, accuracy_on

from polymodal.data.collate import Collate
from polymodal.training import Trainer
from polymodal.training.config import TrainerConfig
from polymodal.training.distributed import World, distributed_session
from polymodal.training.setup import EpochSampler

BATCH = 4  # per rank; the single-process reference uses 2 * BATCH
STOP_AT = 5  # the interrupted run stops after this many strategy calls (mid epoch 1)


class Interrupted(Exception):
    pass


class TwiceStrategy(ToyStrategy):
    """Two optimizer updates per batch (``substeps``), and a simulated kill after ``stop_at`` calls."""

    def __init__(self, model: torch.nn.Module, stop_at: int | None = None) -> None:
        super().__init__(model)
        self.stop_at = stop_at

    def substeps(self, batch: dict[str, Any]) -> list[Any]:
        return [batch, batch]

    def step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.calls == self.stop_at:
            raise Interrupted
        return super().step(batch)


class UnevenStrategy(ToyStrategy):
    """One or two parts per batch depending on its first sample, so ranks split their batches differently."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.parts: list[int] = []

    def substeps(self, batch: dict[str, Any]) -> list[Any]:
        self.parts.append(1 + int(batch["index"][0]) % 2)
        return [batch] * self.parts[-1]

    def step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = super().step(batch)
        return {**out, f"part_{self.calls % 2}": out["loss"].detach()}


def make_trainer(
    run_dir: Path, batch_size: int, world: World, stop_at: int | None = None, uneven: bool = False
) -> Trainer:
    torch.manual_seed(0)
    model = ToyModel()
    model.dropout.p = 0.0  # dropout masks depend on the batch split; without it the split does not matter
    config = TrainerConfig(
        device="cpu", progress=False, log_every=2, checkpoint_every=1, epochs=2, seed=0, scheduler={"name": "constant"}
    )
    evaluate = accuracy_on(ToyDataset(16, seed=1))
    strategy = UnevenStrategy(model) if uneven else TwiceStrategy(model, stop_at)
    return Trainer(strategy, config, run_dir, Collate(), batch_size, evaluate, world=world)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in trainer.model.state_dict().items()}


def worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    out = Path(tmp)
    with distributed_session(torch.device("cpu")) as world:
        dataset = ToyDataset(24)
        trainer = make_trainer(out / "whole", BATCH, world)
        trainer.fit(dataset)
        save_file(weights(trainer), str(out / f"whole-rank{rank}.safetensors"))
        with pytest.raises(Interrupted):
            make_trainer(out / "resumed", BATCH, world, stop_at=STOP_AT).fit(dataset)
        world.barrier()
        trainer = make_trainer(out / "resumed", BATCH, world)
        trainer.fit(dataset, resume=True)
        save_file(weights(trainer), str(out / f"resumed-rank{rank}.safetensors"))
        trainer = make_trainer(out / "uneven", BATCH, world, uneven=True)
        trainer.fit(dataset)
        save_file(weights(trainer), str(out / f"uneven-rank{rank}.safetensors"))
        save_file({"parts": torch.tensor(trainer.strategy.parts)}, str(out / f"uneven-parts{rank}.safetensors"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_one_process_with_the_global_batch(tmp_path: Path) -> None:
    # fork: the children reuse the parent's imports (spawn would import torch twice more, 10 s or more here).
    mp.start_processes(worker, args=(free_port(), str(tmp_path)), nprocs=2, start_method="fork")
    ranks = [load_file(str(tmp_path / f"whole-rank{r}.safetensors")) for r in (0, 1)]
    for key in ranks[0]:
        torch.testing.assert_close(ranks[1][key], ranks[0][key], rtol=0, atol=0)
    # Killed mid-epoch and resumed under two ranks: the same weights as the uninterrupted two-rank run.
    for r in (0, 1):
        resumed = load_file(str(tmp_path / f"resumed-rank{r}.safetensors"))
        for key in ranks[0]:
            torch.testing.assert_close(resumed[key], ranks[0][key], rtol=0, atol=0)
    # A strategy that splits the ranks' batches into different numbers of parts: idle updates keep ranks in step.
    parts = [load_file(str(tmp_path / f"uneven-parts{r}.safetensors"))["parts"] for r in (0, 1)]
    assert not torch.equal(parts[0], parts[1])
    uneven = [load_file(str(tmp_path / f"uneven-rank{r}.safetensors")) for r in (0, 1)]
    for key in uneven[0]:
        torch.testing.assert_close(uneven[1][key], uneven[0][key], rtol=0, atol=0)
    single = make_trainer(tmp_path / "single", 2 * BATCH, World())
    single.fit(ToyDataset(24))
    for key, value in weights(single).items():
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-5, atol=1e-6)
    # Rank 0 wrote the same log rows (global means of the training loss) as the single process, up to rounding.
    two, one = (path.read_text().splitlines() for path in (tmp_path / "whole/log.csv", tmp_path / "single/log.csv"))
    assert [r.split(",")[:3] for r in two] == [r.split(",")[:3] for r in one]
    for a, b in zip(two[1:], one[1:], strict=True):
        assert float(a.split(",")[3]) == pytest.approx(float(b.split(",")[3]), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("size", [7, 8])
def test_ranks_shard_one_order_into_equal_parts(size: int) -> None:
    whole = list(EpochSampler(size, seed=3))
    shards = [list(EpochSampler(size, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == (size + 1) // 2
    padded = whole + whole[: size % 2]
    assert [i for pair in zip(*shards, strict=True) for i in pair] == padded


SMALL = [
    "data.train=train.csv",
    "data.test=test.csv",
    "data.target=label",
    "data.batch_size=4",
    "trainer.epochs=1",
    "trainer.device=cpu",
    "model.encoders={text: {name: transformer, dim: 8, depth: 1, heads: 2}}",
    "model.head={name: mlp, hidden: 16}",
    "eval.noise_levels=[0.0]",
    "data.text.max_length=16",
]


@pytest.mark.e2e
def test_torchrun_cli_writes_one_run_directory(tmp_path: Path, digit_manifest_writer: Callable[..., Path]) -> None:
    digit_manifest_writer(tmp_path, "train.csv", rows=20, columns=("text",))
    digit_manifest_writer(tmp_path, "test.csv", rows=10, offset=20, columns=("text",))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "polymodal", "train", "manifest-joint", *SMALL, "--out", "run"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1
    # Progress is on (the default): only rank 0 prints its stage and epoch lines.
    assert done.stderr.count("\ntraining: 1 epochs of 3 steps (18 samples, batches of 4 x 2 processes)") == 1
    assert done.stderr.count("\nepoch 1/1  train loss ") == 1
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3  # 18 training rows (2 carved for validation): 9 per rank, in steps of 4, 4, 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoints", "config.yaml", "log.csv", "metrics.json", "plots", "run.json"]
    )
