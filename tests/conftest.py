"""Shared fixtures: fixed seeds for every test, and tiny CSV manifests built from the real digit data."""

from __future__ import annotations

import csv
import functools
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST = SHARED_DATA / "mnist" / "mnist.npz"
FSDD = SHARED_DATA / "fsdd" / "recordings"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (many tiny kernels run slower with threads on a busy CPU), then restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Writes a CSV manifest with a header row."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@functools.lru_cache(maxsize=1)
def _mnist_test() -> tuple[np.ndarray, np.ndarray]:
    with np.load(MNIST) as archive:
        return archive["x_test"][:1000], archive["y_test"][:1000]


def _mnist_images(per_digit: int) -> dict[int, list[np.ndarray]]:
    images, labels = _mnist_test()
    return {d: [images[i] for i in np.flatnonzero(labels == d)[:per_digit]] for d in range(10)}


def _write_image(path: Path, pixels: np.ndarray, variant: int) -> None:
    image = Image.fromarray(pixels, mode="L")
    if variant % 3 == 1:  # a different size and colour mode than MNIST's 28x28 gray
        image = image.resize((32, 32)).convert("RGB")
    elif variant % 3 == 2:
        image = image.resize((20, 24))
    image.save(path)


def _write_audio(path: Path, source: Path, variant: int) -> None:
    if variant % 2 == 0:
        path.write_bytes(source.read_bytes())
        return
    # Re-written at 16 kHz stereo so the manifest mixes sample rates and channel counts.
    rate, wave = wavfile.read(source)
    up = np.repeat(wave, 2)
    wavfile.write(path, rate * 2, np.stack([up, up // 2], axis=1).astype(np.int16))


def write_digit_manifest(
    root: Path,
    name: str,
    rows: int = 60,
    offset: int = 0,
    columns: tuple[str, ...] = ("image", "audio", "text"),
    features: bool = False,
    empty_audio: tuple[int, ...] = (),
) -> Path:
    """Writes ``root/name``, a digit manifest (id, image, audio, inline text, label) from MNIST and FSDD.

    Files go under ``root/files`` and cells hold paths relative to ``root``. Row ``r`` is digit ``r % 10``; images
    alternate between 28x28 gray, 32x32 RGB and 20x24 gray, audio between the 8 kHz mono original and a 16 kHz
    stereo copy. ``offset`` picks other samples (for a second manifest), ``features`` adds a ``.npy`` column of
    (4, 6) float32 sequences, and ``empty_audio`` lists rows (0-based) whose audio cell is left empty.
    """
    folder = root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    images = _mnist_images(per_digit=(rows + offset) // 10 + 1)
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
            _write_audio(folder / f"{stem}.wav", FSDD / f"{digit}_{speaker}_{take % 50}.wav", r)
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
