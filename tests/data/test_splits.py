from collections import Counter

import pytest
import torch

from polymodal.data.splits import part_indices, split_indices, subset_indices
from polymodal.errors import ConfigError, DataError


def test_split_is_a_deterministic_partition():
    train, val = split_indices(10, 0.3, seed=0)
    assert sorted(train + val) == list(range(10))
    assert len(val) == 3
    assert train == sorted(train) and val == sorted(val)
    assert split_indices(10, 0.3, seed=0) == (train, val)
    assert any(split_indices(10, 0.3, seed=s)[1] != val for s in range(1, 5))


def test_split_keeps_at_least_one_on_each_side():
    assert len(split_indices(2, 0.01, seed=0)[1]) == 1
    train, val = split_indices(3, 0.99, seed=0)
    assert len(train) == 1 and len(val) == 2


def test_stratified_split_follows_class_proportions():
    targets = torch.tensor([0] * 10 + [1] * 5 + [2] * 5)
    train, val = split_indices(20, 0.2, seed=1, targets=targets)
    assert sorted(train + val) == list(range(20))
    assert Counter(targets[val].tolist()) == {0: 2, 1: 1, 2: 1}


def test_stratified_split_keeps_every_class_in_train():
    targets = ["a", "a", "b", "c", "c", "c"]
    for seed in range(5):
        train, val = split_indices(6, 0.5, seed=seed, targets=targets)
        assert {targets[i] for i in train} == {"a", "b", "c"}
        assert 2 in train  # "b" has a single sample
        assert val


def test_stratified_split_fails_when_every_class_is_a_singleton():
    with pytest.raises(DataError, match="every one of the 3 classes has a single sample"):
        split_indices(3, 0.5, seed=0, targets=[0, 1, 2])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError, match="data.val_fraction: must be between 0 and 1"):
        split_indices(10, fraction, seed=0)


def test_split_rejects_single_sample():
    with pytest.raises(DataError, match="from 1 training sample"):
        split_indices(1, 0.5, seed=0)


def test_subset_is_sorted_deterministic_and_distinct():
    subset = subset_indices(100, 7, seed=3)
    assert len(subset) == 7 == len(set(subset))
    assert subset == sorted(subset)
    assert subset == subset_indices(100, 7, seed=3)
    assert subset_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]


def test_subset_rejects_zero():
    with pytest.raises(ConfigError, match="data.max_train_samples: must be at least 1"):
        subset_indices(5, 0, seed=0)


def test_parts_are_disjoint_cover_everything_and_ignore_the_run_seed():
    parts = [part_indices(10, k, 3) for k in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(10))
    assert [len(p) for p in parts] == [4, 3, 3]
    assert parts[0] == part_indices(10, 0, 3)  # one fixed permutation
    with pytest.raises(ConfigError, match="data.train_part"):
        part_indices(10, 3, 3)
