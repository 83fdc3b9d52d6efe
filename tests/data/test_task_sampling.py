"""Single-task batches in round-robin or proportional order."""

import pytest
import torch

from polymodal.data.task_sampling import TaskBatchSampler

TASKS = torch.tensor([0] * 12 + [1] * 4 + [2] * 2)  # batches of 2: six, two and one


def _task_of(batch):
    assert len({int(TASKS[i]) for i in batch}) == 1, "a batch mixes tasks"
    return int(TASKS[batch[0]])


def test_proportional_covers_every_example_once_in_single_task_batches():
    sampler = TaskBatchSampler(TASKS, 2, seed=0, mode="proportional")
    batches = list(sampler)
    assert len(batches) == len(sampler) == 9
    assert sorted(i for b in batches for i in b) == list(range(18))
    assert [_task_of(b) for b in batches].count(0) == 6


def test_round_robin_takes_tasks_in_turn_and_revisits_small_ones():
    batches = list(TaskBatchSampler(TASKS, 2, seed=0, mode="round_robin"))
    assert [_task_of(b) for b in batches] == [0, 1, 2] * 3
    assert sum(len(b) for b in batches if _task_of(b) == 2) == 6  # task 2 (2 examples) seen three times


@pytest.mark.parametrize("mode", ["round_robin", "proportional"])
def test_order_depends_only_on_seed_and_epoch_and_resumes(mode):
    a, b = TaskBatchSampler(TASKS, 2, 3, mode), TaskBatchSampler(TASKS, 2, 3, mode)
    a.set_position(1, 0)
    b.set_position(1, 4)
    full = list(a)
    assert list(b) == full[4:] and len(b) == 5
    a.set_position(2, 0)
    assert list(a) != full


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown task sampling"):
        TaskBatchSampler(TASKS, 2, 0, "uniform")


def test_ranks_split_the_same_order_and_run_as_many_steps():
    whole = list(TaskBatchSampler(TASKS, 2, 0, "proportional"))
    ranks = [list(TaskBatchSampler(TASKS, 2, 0, "proportional", rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5  # nine batches padded to ten
    padded = whole + whole[:1]
    assert ranks[0] == padded[0::2] and ranks[1] == padded[1::2]
