"""Tests of the packaged AVDigits dataset: splits, shapes, collate, noise level and safe loading."""

import json
import pickle

import numpy as np
import pytest
import torch

from polymodal.data.avdigits import DEFAULT_PATH, AVDigits
from polymodal.data.collate import Collate
from polymodal.errors import ConfigError, DataError
from polymodal.modalities.audio import AudioConfig
from polymodal.modalities.text import TextConfig


@pytest.fixture(scope="module")
def test_split():
    return AVDigits("test")


@pytest.mark.parametrize(("split", "size"), [("train", 12000), ("val", 2000), ("test", 3000)])
def test_split_sizes_and_balance(split, size):
    data = AVDigits(split)
    assert len(data) == size
    assert data.targets.dtype == torch.long and data.targets.shape == (size,)
    counts = torch.bincount(data.targets, minlength=10).float() / size
    assert counts.min() > 0.06 and counts.max() < 0.14  # MNIST's mild imbalance, nowhere near one class


def test_sample_shapes_and_dtypes(test_split):
    sample = test_split[5]
    image, audio, text = (sample["inputs"][m] for m in AVDigits.modalities)
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert audio.shape == (1, 32, 64) and audio.dtype == torch.float32 and torch.isfinite(audio).all()
    assert text.ndim == 1 and text.dtype == torch.long and 1 <= len(text) <= 64
    assert sample["target"].dtype == torch.long and sample["target"].ndim == 0
    assert sample["index"] == 5
    assert AVDigits.num_classes == 10 and AVDigits.class_names == [str(d) for d in range(10)]


def test_collate_batches_samples(test_split):
    batch = Collate()([test_split[i] for i in range(4)])
    assert batch["inputs"]["image"].shape == (4, 1, 28, 28)
    assert batch["inputs"]["audio"].shape == (4, 1, 32, 64)
    assert batch["inputs"]["text"].shape == (4, int(batch["lengths"]["text"].max()))
    assert all(batch["present"][m].all() for m in AVDigits.modalities)
    torch.testing.assert_close(batch["target"], test_split.targets[:4])
    torch.testing.assert_close(batch["index"], torch.arange(4))


def test_text_is_informative_but_not_an_oracle(test_split):
    wrong = (test_split.text_targets != test_split.targets).float().mean().item()
    assert 0.05 < wrong < 0.25
    with np.load(DEFAULT_PATH, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
    assert meta["stats"]["test"]["mistranscribed"] == pytest.approx(wrong)
    assert 0.05 < meta["text"]["mistranscription_rate"] < 0.25


def test_max_frames_may_differ_but_mel_params_may_not():
    data = AVDigits("val", audio=AudioConfig(max_frames=16), text=TextConfig(max_length=4))
    assert data[0]["inputs"]["audio"].shape == (1, 32, 16)
    assert len(data[0]["inputs"]["text"]) <= 4
    with pytest.raises(ConfigError, match=r"^avdigits: audio config differs .*n_mels=40 \(stored 32\)$"):
        AVDigits("val", audio=AudioConfig(n_mels=40))


def test_bad_split_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        AVDigits("dev")
    with pytest.raises(DataError, match="missing.npz: file not found"):
        AVDigits("test", path=tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="corrupt.npz: not a readable avdigits .npz file"):
        AVDigits("test", path=corrupt)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(2))
    with pytest.raises(DataError, match="other.npz: missing array"):
        AVDigits("test", path=other)


def test_loading_never_unpickles(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading avdigits")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with np.load(DEFAULT_PATH, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
    assert len(AVDigits("val")) == 2000
