"""Shared fixtures: one thread and fixed seeds for every test, and small digit data written from the packaged asset.

Nothing here needs ``../shared``: images come from ``avdigits.npz`` (MNIST pixels) and recordings are resynthesised
from its FSDD log-mels. Tests that genuinely need the big real data ask :func:`shared_file`, which skips without it.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from polymodal.data.avdigits import DEFAULT_PATH as AVDIGITS
from polymodal.modalities.audio import hz_to_mel, mel_to_hz

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """One intra-op thread, also for subprocesses unless set: tiny kernels run slower with threads on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        for name in THREAD_VARIABLES:
            patch.setenv(name, os.environ.get(name, "1"))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user cache folder (decoded manifests, cached features of frozen encoders) is a temporary one, also for
    subprocesses: never the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYMODAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def _shared_file(relpath: str, what: str) -> Path:
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{relpath} ({what}), absent")
    return path


@pytest.fixture(scope="session")
def shared_file() -> Callable[[str, str], Path]:
    """``shared_file(relpath, what)``: the big real data file ``../shared/data/relpath``; skips the test without it."""
    return _shared_file


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Writes a CSV manifest with a header row."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@functools.lru_cache(maxsize=1)
def _asset() -> dict[str, Any]:
    keys = ("train_image", "train_label", "test_image", "test_label", "mel", "mel_offsets", "mel_range", "recordings")
    with np.load(AVDIGITS, allow_pickle=False) as archive:
        arrays: dict[str, Any] = {k: archive[k] for k in keys}
        arrays["audio"] = json.loads(str(archive["meta"]))["audio"]
    arrays["recording_index"] = {str(name): r for r, name in enumerate(arrays["recordings"])}
    return arrays


@functools.lru_cache(maxsize=512)
def _recording(name: str) -> np.ndarray:
    """FSDD clip ``name`` (``{digit}_{speaker}_{take}``) as 8 kHz int16, resynthesised from its stored log-mel.

    One sinusoid per mel band at the band's centre frequency, its amplitude following the band's energy frame by
    frame: not the original waveform, but its log-mel is close to the stored one, so the digit stays audible.
    """
    asset, settings = _asset(), _asset()["audio"]
    r = asset["recording_index"][name]
    quantised = asset["mel"][asset["mel_offsets"][r] : asset["mel_offsets"][r + 1]].astype(np.float64)
    lo, hi = (float(v) for v in asset["mel_range"])
    amplitude = np.exp((lo + quantised / 255 * (hi - lo)) / 2)  # (frames, n_mels): sqrt of the band power
    hop, rate, bands = settings["hop_length"], settings["sample_rate"], amplitude.shape[1]
    t = np.arange(len(amplitude) * hop)
    envelope = np.stack([np.interp(t, np.arange(len(amplitude)) * hop, a) for a in amplitude.T], axis=1)
    edges = mel_to_hz(np.linspace(hz_to_mel(settings["f_min"]), hz_to_mel(settings["f_max"]), bands + 2))
    phases = np.random.default_rng(r).uniform(0, 2 * np.pi, bands)
    wave = (envelope * np.sin(2 * np.pi * np.outer(t, edges[1:-1]) / rate + phases)).sum(axis=1)
    return (wave / np.abs(wave).max() * 16000).astype(np.int16)  # peak at half the int16 range


def write_fsdd(
    folder: Path, digits: range = range(10), speakers: tuple[str, ...] = FSDD_SPEAKERS, takes: range = range(2)
) -> Path:
    """Writes an FSDD-style folder: ``{digit}_{speaker}_{take}.wav``, 8 kHz mono int16, for every combination."""
    folder.mkdir(parents=True, exist_ok=True)
    rate = _asset()["audio"]["sample_rate"]
    for digit in digits:
        for speaker in speakers:
            for take in takes:
                name = f"{digit}_{speaker}_{take}"
                wavfile.write(folder / f"{name}.wav", rate, _recording(name))
    return folder


def write_mnist(path: Path, train: int, test: int) -> Path:
    """Writes a Keras-style ``mnist.npz`` holding ``train`` training and ``test`` test digits of the asset."""
    asset = _asset()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{x}_{split}": asset[f"{split}_{key}"][:n]
        for split, n in (("train", train), ("test", test))
        for x, key in (("x", "image"), ("y", "label"))
    }
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def fsdd_writer() -> Callable[..., Path]:
    """:func:`write_fsdd`: ``fsdd_writer(folder, digits=range(10), speakers=FSDD_SPEAKERS, takes=range(2))``."""
    return write_fsdd


@pytest.fixture(scope="session")
def mnist_writer() -> Callable[..., Path]:
    """:func:`write_mnist`: ``mnist_writer(path, train=40, test=10)``."""
    return write_mnist


def _images_by_digit(per_digit: int) -> dict[int, list[np.ndarray]]:
    images, labels = _asset()["test_image"], _asset()["test_label"]
    return {d: [images[i] for i in np.flatnonzero(labels == d)[:per_digit]] for d in range(10)}


def _write_image(path: Path, pixels: np.ndarray, variant: int) -> None:
    image = Image.fromarray(pixels, mode="L")
    if variant % 3 == 1:  # a different size and colour mode than MNIST's 28x28 gray
        image = image.resize((32, 32)).convert("RGB")
    elif variant % 3 == 2:
        image = image.resize((20, 24))
    image.save(path)


def _write_audio(path: Path, name: str, variant: int) -> None:
    rate, wave = _asset()["audio"]["sample_rate"], _recording(name)
    if variant % 2 == 0:
        wavfile.write(path, rate, wave)
        return
    # Written at twice the rate in stereo so the manifest mixes sample rates and channel counts.
    up = np.repeat(wave, 2)
    wavfile.write(path, rate * 2, np.stack([up, up // 2], axis=1))


def write_digit_manifest(
    root: Path,
    name: str,
    rows: int = 60,
    offset: int = 0,
    columns: tuple[str, ...] = ("image", "audio", "text"),
    features: bool = False,
    empty_audio: tuple[int, ...] = (),
) -> Path:
    """Writes ``root/name``, a digit manifest (id, image, audio, inline text, label) from the packaged digits.

    Files go under ``root/files`` and cells hold paths relative to ``root``. Row ``r`` is digit ``r % 10``; images
    (MNIST test digits) alternate between 28x28 gray, 32x32 RGB and 20x24 gray, audio (FSDD recordings, see
    :func:`_recording`) between 8 kHz mono and a 16 kHz stereo copy. ``offset`` picks other samples (for a second
    manifest), ``features`` adds a ``.npy`` column of (4, 6) float32 sequences, and ``empty_audio`` lists rows
    (0-based) whose audio cell is left empty.
    """
    folder = root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    images = _images_by_digit(per_digit=(rows + offset) // 10 + 1)
    rng = np.random.default_rng(offset)
    table = []
    for r in range(offset, offset + rows):
        digit, take = r % 10, r // 10
        stem = f"{Path(name).stem}_{r}"
        cells = {"id": str(r), "label": str(digit)}
        if "image" in columns:
            _write_image(folder / f"{stem}.png", images[digit][take], r)
            cells["image"] = f"files/{stem}.png"
        if "audio" in columns:
            speaker = FSDD_SPEAKERS[take % len(FSDD_SPEAKERS)]
            _write_audio(folder / f"{stem}.wav", f"{digit}_{speaker}_{take % 50}", r)
            cells["audio"] = "" if r - offset in empty_audio else f"files/{stem}.wav"
        if "text" in columns:
            cells["text"] = DIGIT_WORDS[digit]
        if features:
            # A 4-step sequence whose mean encodes the digit, so the features column is learnable.
            steps = rng.standard_normal((4, 6)).astype(np.float32) * 0.1 + digit / 10
            np.save(folder / f"{stem}.npy", steps)
            cells["features"] = f"files/{stem}.npy"
        table.append(cells)
    header = ["id", *(c for c in ("image", "audio", "text", "features") if c in table[0]), "label"]
    return write_csv(root / name, header, [[row[c] for c in header] for row in table])


@pytest.fixture
def digit_manifest(tmp_path: Path) -> Callable[..., Path]:
    """``write_digit_manifest`` bound to ``tmp_path``: ``digit_manifest("train.csv", rows=20)``."""
    return functools.partial(write_digit_manifest, tmp_path)


@pytest.fixture(scope="session")
def digit_manifest_writer() -> Callable[..., Path]:
    """``write_digit_manifest`` itself, for module-scoped fixtures that pick their own folder."""
    return write_digit_manifest


@pytest.fixture(scope="module")
def scoped_registrations() -> Iterator[None]:
    """Components registered while a test module runs are unregistered after it, so that registry sweeps and name
    lists in other modules see only the package's own components."""
    from polymodal.data.sources import DATASETS
    from polymodal.models import ARCHITECTURES, ENCODERS, FUSIONS, HEADS
    from polymodal.strategies import STRATEGIES

    with pytest.MonkeyPatch.context() as patch:
        for registry in (DATASETS, ARCHITECTURES, ENCODERS, FUSIONS, HEADS, STRATEGIES):
            patch.setattr(registry, "_entries", dict(registry._entries))
        yield
