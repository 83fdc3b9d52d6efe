"""Sources that default to packaged data: the embedded AV-MNIST, captioned avdigits images; MNIST content checks."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from polymodal.data import mnist
from polymodal.data.avdigits import digit_images
from polymodal.data.avmnist import (
    CLIPS_PATH,
    NOISE_SECONDS,
    SAMPLE_RATE,
    TEST_SPEAKER,
    EmbeddedAVMNIST,
    embedded_avmnist_splits,
    mu_law_decode,
    mu_law_encode,
    noisy_spectrogram,
    pink_noise,
    read_clips,
)
from polymodal.data.config import DataConfig
from polymodal.data.digit_captions import TEST_SIZE, VAL_SIZE, digit_caption_splits
from polymodal.data.sources import build_data
from polymodal.errors import DataError
from polymodal.modalities.image import ImageConfig
from polymodal.modalities.text import TextConfig


def test_mu_law_round_trip_keeps_speech_far_above_the_added_noise():
    t = np.arange(8000) / 8000.0
    wave = 0.2 * np.sin(2 * np.pi * 440 * t) * np.hanning(t.size)
    codes = mu_law_encode(wave)
    assert codes.dtype == np.uint8 and mu_law_encode(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    error = mu_law_decode(codes) - wave
    assert 10 * np.log10(np.mean(wave**2) / np.mean(error**2)) > 30  # AV-MNIST's added noise is 0-10 dB SNR


def test_packaged_clips_hold_every_digit_and_speaker():
    names, waves = read_clips()
    assert len(names) == len(waves) == 600
    speakers = {n.split("_")[1] for n in names}
    assert len(speakers) == 6 and TEST_SPEAKER in speakers
    assert {int(n[0]) for n in names if f"_{TEST_SPEAKER}_" in n} == set(range(10))
    assert all(np.abs(w).max() <= 1.0 and len(w) > 1000 for w in waves)
    with np.load(CLIPS_PATH, allow_pickle=False) as archive:
        assert json.loads(str(archive["meta"]))["source"]["licence"] == "CC BY-SA 4.0"


def _tiny_clips(path: Path) -> Path:
    """Two takes per digit from two speakers (one of them the test speaker) as a clips file."""
    names, codes = [], []
    for speaker in ("george", TEST_SPEAKER):
        for digit in range(10):
            for take in (0, 1):
                t = np.arange(3000 + 100 * take) / 8000.0
                codes.append(mu_law_encode(0.3 * np.sin(2 * np.pi * (200 + 150 * digit) * t)))
                names.append(f"{digit}_{speaker}_{take}")
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])])
    np.savez(path, wave=np.concatenate(codes), offsets=offsets, recordings=np.array(names))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_clips(tmp_path_factory.mktemp("clips") / "clips.npz")


@pytest.fixture(scope="module")
def embedded(clips: Path) -> tuple[EmbeddedAVMNIST, ...]:
    return embedded_avmnist_splits(components=20, clips=clips)


def test_embedded_avmnist_uses_the_avdigits_images_and_pairs_by_digit(embedded, clips):
    for split, data in zip(("train", "val", "test"), embedded, strict=True):
        _, labels = digit_images(split)
        assert data.targets.tolist() == labels.tolist()
    sample = embedded[2][5]
    assert sample["inputs"]["image"].shape == (1, 28, 28) and sample["inputs"]["audio"].shape == (1, 112, 112)
    assert 0.0 <= float(sample["inputs"]["audio"].min()) and float(sample["inputs"]["audio"].max()) <= 1.0
    names, _ = read_clips(clips)
    for data, is_test in ((embedded[0], False), (embedded[2], True)):
        recording = data.pairing.recording
        assert [int(names[r][0]) for r in recording] == data.targets.tolist()
        assert {f"_{TEST_SPEAKER}_" in names[r] for r in recording} == {is_test}


def test_embedded_audio_is_the_builders_noisy_spectrogram_and_stays_fixed(embedded, clips):
    _, waves = read_clips(clips)
    noise = pink_noise(NOISE_SECONDS * SAMPLE_RATE, np.random.default_rng(0))  # plan_audio draws the track first
    test, i = embedded[2], 7
    first = test[i]["inputs"]["audio"].numpy()
    p = test.pairing
    expected = noisy_spectrogram(waves[p.recording[i]], noise, p.snr_db[i], p.noise_start[i])
    np.testing.assert_array_equal(first[0], expected.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(test[i]["inputs"]["audio"].numpy(), first)


def test_avmnist_source_without_root_is_the_embedded_one():
    bundle = build_data(DataConfig(name="avmnist", max_train_samples=8, max_eval_samples=4), seed=0)
    assert bundle.shapes == {"image": (1, 28, 28), "audio": (1, 112, 112)}
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (8, 4, 4)
    assert isinstance(bundle.test.dataset, EmbeddedAVMNIST)


def test_digit_captions_without_root_caption_the_avdigits_images():
    train, val, test = digit_caption_splits(None, 0, ImageConfig(), TextConfig())
    assert len(train) == len(digit_images("train")[1]) and (len(val), len(test)) == (VAL_SIZE, TEST_SIZE)
    images, labels = digit_images("test")
    assert test.targets.tolist() == labels[:TEST_SIZE].tolist()
    np.testing.assert_array_equal(test._images, images[:TEST_SIZE])
    bundle = build_data(DataConfig(name="digit-captions", max_eval_samples=4), seed=0)
    assert bundle.modalities == ["image", "text"] and len(bundle.test) == 4


def _write_mnist(path: Path, x_train: np.ndarray, x_test: np.ndarray, compressed: bool) -> Path:
    arrays = {
        "x_train": x_train,
        "y_train": np.arange(len(x_train), dtype=np.uint8) % 10,
        "x_test": x_test,
        "y_test": np.arange(len(x_test), dtype=np.uint8) % 10,
    }
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def test_mnist_content_checksum_ignores_the_container(tmp_path: Path):
    x_train, x_test = np.ones((4, 28, 28), np.uint8), np.zeros((2, 28, 28), np.uint8)
    plain = mnist.read_mnist(_write_mnist(tmp_path / "a.npz", x_train, x_test, compressed=False))
    packed = mnist.read_mnist(_write_mnist(tmp_path / "b.npz", x_train, x_test, compressed=True))
    assert mnist.content_sha256(plain) == mnist.content_sha256(packed)
    x_train[0, 0, 0] = 2
    assert mnist.content_sha256({**plain, "x_train": x_train}) != mnist.content_sha256(plain)


def test_a_full_size_file_that_is_not_mnist_warns_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _write_mnist(tmp_path / "mnist.npz", np.ones((4, 28, 28), np.uint8), np.zeros((2, 28, 28), np.uint8), True)
    with warnings.catch_warnings():  # a smaller file than MNIST (a subset, a fixture) is not checked
        warnings.simplefilter("error")
        arrays = mnist.read_mnist(path)
    monkeypatch.setattr(mnist, "FULL_SIZES", (4, 2))  # now the tiny file counts as full size
    with pytest.warns(UserWarning, match=r"mnist\.npz: arrays are not MNIST's \(content sha256 [0-9a-f]{12}\.\.\."):
        mnist.read_mnist(path)
    monkeypatch.setattr(mnist, "CONTENT_SHA256", mnist.content_sha256(arrays))
    with warnings.catch_warnings():  # matching content: silent
        warnings.simplefilter("error")
        mnist.read_mnist(path)


def test_missing_clips_file_is_one_line(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.npz: not a readable fsdd_clips \.npz file"):
        read_clips(tmp_path / "nope.npz")
