"""AV-MNIST builder and dataset on a tiny build from a few MNIST images and FSDD recordings of the packaged digits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.cli import main
from polymodal.data.avmnist import AVMNIST, build_avmnist, degrade_images, fit_pca, log_spectrogram
from polymodal.data.config import DataConfig
from polymodal.data.sources import build_data
from polymodal.errors import DataError


@pytest.fixture(scope="module")
def tiny_build(
    tmp_path_factory: pytest.TempPathFactory, mnist_writer: Callable[..., Path], fsdd_writer: Callable[..., Path]
) -> Path:
    """30 train + 10 val images and 10 test images, two speakers' recordings (george for train, yweweler test)."""
    root = tmp_path_factory.mktemp("avmnist")
    mnist_writer(root / "mnist.npz", train=40, test=10)
    fsdd_writer(root / "fsdd", speakers=("george", "yweweler"), takes=range(2))
    build_avmnist(root / "mnist.npz", root / "fsdd", root / "out", components=20, val_size=10, progress=False)
    return root


def test_layout_loads_without_pickle_and_pairs_by_digit(tiny_build: Path):
    out = tiny_build / "out"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sizes"] == {"train": 30, "val": 10, "test": 10}
    recordings = meta["recordings"]
    for split, n in meta["sizes"].items():
        image = np.load(out / f"{split}_image.npy", allow_pickle=False)
        audio = np.load(out / f"{split}_audio.npy", allow_pickle=False)
        label = np.load(out / f"{split}_label.npy", allow_pickle=False)
        recording = np.load(out / f"{split}_recording.npy", allow_pickle=False)
        assert image.shape == (n, 28, 28) and image.dtype == np.uint8
        assert audio.shape == (n, 112, 112) and audio.dtype == np.uint8
        names = [recordings[r] for r in recording]
        # Same digit as the image; the held-out speaker only in test.
        assert [int(s.split("_")[0]) for s in names] == label.tolist()
        assert all(("_yweweler_" in s) == (split == "test") for s in names)
    # Validation is the last 10 training images, in order.
    with np.load(tiny_build / "mnist.npz") as archive:
        assert np.load(out / "val_label.npy").tolist() == archive["y_train"][30:].tolist()


def test_dataset_and_source(tiny_build: Path):
    dataset = AVMNIST("val", tiny_build / "out")
    sample = dataset[3]
    assert sample["inputs"]["image"].shape == (1, 28, 28) and sample["inputs"]["audio"].shape == (1, 112, 112)
    assert 0.0 <= float(sample["inputs"]["audio"].min()) and float(sample["inputs"]["audio"].max()) <= 1.0
    assert sample["target"].dtype == torch.int64
    bundle = build_data(DataConfig(name="avmnist", root=str(tiny_build / "out"), max_eval_samples=4), seed=0)
    assert bundle.shapes == {"image": (1, 28, 28), "audio": (1, 112, 112)}
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (30, 4, 4)
    with pytest.raises(DataError, match="not an AV-MNIST build"):
        AVMNIST("train", tiny_build)


def test_build_refuses_to_overwrite(tiny_build: Path):
    with pytest.raises(DataError, match="already holds"):
        build_avmnist(tiny_build / "mnist.npz", tiny_build / "fsdd", tiny_build / "out", val_size=10, progress=False)


def test_pca_hand_case():
    # Points on the line t * (1, 2) plus the mean (1, 1): the first component is (1, 2) / sqrt(5) up to sign, and a
    # one-component reconstruction is exact.
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    points = np.stack([1 + t, 1 + 2 * t], axis=1)
    mean, basis = fit_pca(points, 1)
    np.testing.assert_allclose(mean, [1.0, 1.0])
    np.testing.assert_allclose(np.abs(basis[0]), np.array([1.0, 2.0]) / np.sqrt(5.0))
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 5, 5] = 200
    # A full orthonormal basis reconstructs exactly; one direction keeps only that pixel's deviation from the mean.
    np.testing.assert_array_equal(degrade_images(image, np.zeros(784), np.eye(784)), image)
    kept = degrade_images(image, np.full(784, 10.0), np.eye(784)[[5 * 28 + 5]])
    assert int(kept[0, 5, 5]) == 200 and int(kept[0, 0, 0]) == 10


def test_spectrogram_size_and_scale():
    quiet = log_spectrogram(np.zeros(8000))
    assert quiet.shape == (112, 112) and quiet.dtype == np.uint8 and int(quiet.max()) == 0
    tone = log_spectrogram(0.5 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000))
    assert int(tone[:, 50].argmax()) == 28  # 1000 Hz is bin 1000 / (8000 / 222) = 27.75


def test_cli_missing_input_is_one_line(tiny_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    fsdd = str(tiny_build / "fsdd")
    code = main(["data", "build", "avmnist", "--mnist", str(tmp_path / "no.npz"), "--fsdd", fsdd, "--out", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no.npz: file not found" in err[0]


@pytest.mark.e2e
def test_mla_recipe_trains_end_to_end_with_laziness_plot(tiny_build: Path, tmp_path: Path):
    out = tmp_path / "run"
    argv = ["train", "avmnist-mla", f"data.root={tiny_build / 'out'}", "trainer.epochs=2", "trainer.progress=false"]
    assert main([*argv, "data.batch_size=8", "eval.noise_levels=[0.0]", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "alternating" and set(metrics["per_modality"]) == {"image", "audio"}
    assert (out / "plots" / "modality_accuracy.png").stat().st_size > 0
    state = json.loads((out / "checkpoints" / "best.json").read_text())
    assert state["epoch"] in (1, 2) and metrics["selected"] == {"epoch": state["epoch"], "step": state["step"]}


def test_a_recording_name_outside_the_fsdd_pattern_is_one_line():
    from polymodal.data.avmnist import _recording_labels

    digits, test_pool = _recording_labels(["3_george_0.wav", "7_yweweler_12.wav"])
    assert digits.tolist() == [3, 7] and test_pool.tolist() == [False, True]
    with pytest.raises(DataError, match=r"^hello\.wav: not an FSDD recording name"):
        _recording_labels(["3_george_0.wav", "hello.wav"])
