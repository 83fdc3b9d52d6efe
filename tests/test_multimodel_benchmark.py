"""benchmarks/multimodel.py: the alone runs' update budget replays the joint sampler; studies keep their own rows."""

import importlib.util
from pathlib import Path

import pytest
import torch

from polymodal.data.multitask_digits import TASKS as TABLE
from polymodal.data.task_sampling import TaskBatchSampler
from polymodal.training.setup import EpochSampler

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "multimodel.py"
spec = importlib.util.spec_from_file_location("multimodel_benchmark", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# Task ids as in multitask-digits: 200 mnist (0), 100 translate (3), 10 parse (4).
TASKS = torch.tensor([0] * 200 + [3] * 100 + [4] * 10)
NAMES = [spec.name for spec in TABLE]


@pytest.mark.parametrize("seed", [0, 3])
def test_the_benchmark_draws_the_batches_the_trainer_draws(seed: int):
    sampler = EpochSampler(len(TASKS), seed)
    for epoch in range(3):
        sampler.set_position(epoch, 0)
        assert bench.epoch_order(len(TASKS), seed, epoch).tolist() == list(sampler)
        for mode in ("round_robin", "proportional"):
            batches = TaskBatchSampler(TASKS, bench.BATCH, seed, mode)
            batches.set_position(epoch, 0)
            assert bench.task_batches(TASKS, bench.BATCH, seed, epoch, mode) == list(batches)


def test_round_robin_updates_are_the_batches_of_each_task():
    updates = bench.task_updates(TASKS, NAMES, "round_robin", seed=0, epochs=2)
    # 4 + 2 + 1 = 7 batches of 64 per epoch, taken in turn: mnist, translate, parse, mnist, translate, parse, mnist.
    assert updates == {"mnist": 6, "asr": 0, "speaker": 0, "translate": 4, "parse": 4}


def test_mixed_updates_count_the_batches_a_task_appears_in():
    updates = bench.task_updates(TASKS, NAMES, "mixed", seed=0, epochs=2)
    assert updates["mnist"] == 10 == 2 * 5  # 310 examples: 5 batches an epoch, each with mnist in it
    assert 0 < updates["parse"] <= 10 and updates["asr"] == updates["speaker"] == 0


def _row(study, setting, seed, task, value):
    return {"study": study, "setting": setting, "seed": seed, "task": task, "value": value, "val_value": value}


def test_put_replaces_only_the_same_study_setting_seed_and_task():
    old = [
        _row("a", "joint", 0, "parse", 0.1),
        _row("b", "joint", 0, "parse", 0.2),
        _row("a", "alone", 0, "parse", 0.3),
    ]
    rows = bench._put(old, [_row("a", "joint", 0, "parse", 0.9)])
    assert [(r["study"], r["setting"], r["value"]) for r in rows] == [
        ("b", "joint", 0.2),
        ("a", "alone", 0.3),
        ("a", "joint", 0.9),
    ]
