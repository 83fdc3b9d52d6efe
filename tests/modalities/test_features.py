"""Tests of the features adapter: accepted shapes and every refused input."""

import pickle

import numpy as np
import pytest
import torch

from polymodal.errors import DataError
from polymodal.modalities.features import FeaturesAdapter, FeaturesConfig


def test_vector_becomes_one_step_and_dtype_is_float32():
    out = FeaturesAdapter(FeaturesConfig(dim=3)).from_array(np.array([1, 2, 3], dtype=np.int64))
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 3.0]]))


def test_sequence_is_truncated():
    arr = np.arange(8, dtype=np.float64).reshape(4, 2)
    out = FeaturesAdapter(FeaturesConfig(max_length=3)).from_array(arr)
    torch.testing.assert_close(out, torch.tensor(arr[:3], dtype=torch.float32))


@pytest.mark.parametrize(
    ("arr", "cfg", "problem"),
    [
        (np.zeros((2, 2, 2)), FeaturesConfig(), "expected shape (D,) or (T, D), got shape (2, 2, 2)"),
        (np.array(["a", "b"]), FeaturesConfig(), "expected a numeric array, got dtype <U1"),
        (np.zeros((2, 4)), FeaturesConfig(dim=3), "expected feature dimension 3, got 4"),
        (np.zeros((0, 3)), FeaturesConfig(), "is empty"),
        (np.array([1.0, np.nan]), FeaturesConfig(), "contains NaN or inf values"),
        (np.array([[np.inf, 1.0]]), FeaturesConfig(), "contains NaN or inf values"),
        (np.array([1 + 2j]), FeaturesConfig(), "expected a numeric array"),
    ],
)
def test_bad_arrays(arr, cfg, problem):
    with pytest.raises(DataError) as info:
        FeaturesAdapter(cfg).from_array(arr, source="x.npy")
    assert str(info.value).startswith(f"x.npy: {problem}")


def test_from_file_loads_npy(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.ones((2, 3), dtype=np.float16))
    out = FeaturesAdapter(FeaturesConfig(dim=3)).from_file(path)
    assert out.shape == (2, 3) and out.dtype == torch.float32


def test_from_file_refuses_pickles_and_object_arrays(tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pickled = tmp_path / "pickled.npy"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    adapter = FeaturesAdapter(FeaturesConfig())
    for path in (objects, pickled):
        with pytest.raises(DataError) as info:
            adapter.from_file(path)
        assert str(info.value).startswith(f"{path}: holds pickled Python objects")


def test_from_file_missing_corrupt_and_npz(tmp_path):
    adapter = FeaturesAdapter(FeaturesConfig())
    with pytest.raises(DataError, match="gone.npy: file not found"):
        adapter.from_file(tmp_path / "gone.npy")
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(DataError, match="corrupt.npy: not a valid .npy file"):
        adapter.from_file(corrupt)
    archive = tmp_path / "a.npz"
    np.savez(archive, x=np.zeros(2))
    with pytest.raises(DataError, match="a.npz: expected a single .npy array"):
        adapter.from_file(archive)
