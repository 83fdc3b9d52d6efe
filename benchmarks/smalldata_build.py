"""Builds the small-data benchmark's CSV manifests from real MNIST and FSDD files (issue 15).

A user's small folder of digits, as a new user would bring it: images as PNG/JPEG files at mixed sizes and colours
(28 px gray, 48 px tinted RGB JPEG, 64 px tinted RGB PNG), speech as WAV files at mixed sample rates and channel
counts (8 kHz mono, 16 kHz mono, 44.1 kHz stereo), and short texts naming the number with about 15 % of their
characters mistyped. Each row pairs an image, a recording and a text of the same digit.

- train: ``per_class`` rows per digit, drawn with ``seed`` from MNIST's training images and FSDD recordings with
  index 5-49 (FSDD's own convention: indices 0-4 of each speaker and digit are its test set);
- test: a fixed 30 rows per digit (300) from MNIST's test images and FSDD recordings with index 0-4, the same for
  every seed and size.

Usage::

    python benchmarks/smalldata_build.py --shared ../shared/data --per-class 24 --seed 0 --out DIR

writes ``DIR/train.csv``, ``DIR/test.csv`` and the files they name (``img/``, ``wav/``). Validation is carved from
train by the run (``data.val_fraction``), as it would be for a user.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile
from scipy.signal import resample_poly

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("{}", "{}", "the number {}", "it says {}", "a {}", "digit {}")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
TYPO_RATE = 0.15
TEST_PER_CLASS = 30  # FSDD holds 30 test recordings per digit (6 speakers x indices 0-4)


def typo(text: str, rng: np.random.Generator, rate: float = TYPO_RATE) -> str:
    """Mistypes about ``rate`` of the characters: each one is substituted, deleted, doubled or swapped."""
    chars = list(text)
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c != " " and rng.random() < rate:
            kind = rng.integers(4)
            if kind == 0:
                out.append(LETTERS[rng.integers(26)])
            elif kind == 2:
                out.extend([c, c])
            elif kind == 3 and i + 1 < len(chars):
                out.extend([chars[i + 1], c])
                i += 1
            # kind 1 (or a swap at the end): deleted
        else:
            out.append(c)
        i += 1
    return "".join(out) or text


def write_image(path: Path, pixels: np.ndarray, variant: int, rng: np.random.Generator) -> str:
    """Writes one digit: 28 px gray PNG, 48 px tinted RGB JPEG or 64 px tinted RGB PNG. Returns the file name."""
    if variant == 0:
        Image.fromarray(pixels, mode="L").save(path.with_suffix(".png"))
        return path.with_suffix(".png").name
    size, suffix = (48, ".jpg") if variant == 1 else (64, ".png")
    gray = np.asarray(Image.fromarray(pixels, mode="L").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    ink = rng.uniform(0.0, 1.0, 3)
    paper = 1.0 - ink * rng.uniform(0.3, 1.0)  # a contrasting background
    rgb = paper[None, None] * (1 - gray[..., None]) + ink[None, None] * gray[..., None]
    Image.fromarray((rgb * 255).round().astype(np.uint8), mode="RGB").save(path.with_suffix(suffix), quality=90)
    return path.with_suffix(suffix).name


def write_audio(path: Path, source: Path, variant: int) -> str:
    """Writes one recording: 8 kHz mono as recorded, 16 kHz mono, or 44.1 kHz stereo (int16). Returns the name."""
    rate, wave = wavfile.read(source)
    wave = wave.astype(np.float32)
    if variant == 1:
        rate, wave = 16000, resample_poly(wave, 2, 1)
    elif variant == 2:
        rate, wave = 44100, resample_poly(wave, 441, 80)
        wave = np.stack([wave, 0.8 * wave], axis=1)
    wavfile.write(path, rate, np.clip(wave, -32768, 32767).astype(np.int16))
    return path.name


def fsdd_pool(recordings: Path) -> dict[tuple[str, int], list[Path]]:
    """(split, digit) -> recordings, split by FSDD's file-name convention (index 0-4 test, the rest train)."""
    pool: dict[tuple[str, int], list[Path]] = {}
    for path in sorted(recordings.glob("*.wav")):
        digit, _speaker, index = path.stem.split("_")
        split = "test" if int(index) < 5 else "train"
        pool.setdefault((split, int(digit)), []).append(path)
    return pool


def write_split(
    out: Path,
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    audio: dict[tuple[str, int], list[Path]],
    per_class: int,
    rng: np.random.Generator,
) -> int:
    """Writes ``name``.csv with ``per_class`` rows per digit; returns the number of rows."""
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    split = "test" if name == "test" else "train"
    rows = []
    for digit in range(10):
        picks = rng.choice(np.flatnonzero(labels == digit), per_class, replace=False)
        clips = rng.choice(len(audio[(split, digit)]), per_class, replace=False)
        for k, (i, j) in enumerate(zip(picks, clips, strict=True)):
            stem = f"{name}-{digit}-{k:03d}"
            variant = int(rng.integers(3))
            image = write_image(out / "img" / stem, images[i], variant, rng)
            wav = write_audio(out / "wav" / f"{stem}.wav", audio[(split, digit)][j], int(rng.integers(3)))
            text = typo(TEMPLATES[rng.integers(len(TEMPLATES))].format(WORDS[digit]), rng)
            rows.append([stem, f"img/{image}", f"wav/{wav}", text, str(digit)])
    order = rng.permutation(len(rows))
    with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "photo", "speech", "caption", "label"])
        writer.writerows(rows[i] for i in order)
    return len(rows)


def build(shared: Path, per_class: int, seed: int, out: Path) -> dict[str, int]:
    """Writes ``out/train.csv`` (``per_class`` per digit, drawn with ``seed``) and ``out/test.csv`` (fixed)."""
    with np.load(shared / "mnist" / "mnist.npz") as mnist:
        x_train, y_train, x_test, y_test = (mnist[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    audio = fsdd_pool(shared / "fsdd" / "recordings")
    out.mkdir(parents=True, exist_ok=True)
    train = write_split(out, "train", x_train, y_train, audio, per_class, np.random.default_rng(1000 + seed))
    test = write_split(out, "test", x_test, y_test, audio, TEST_PER_CLASS, np.random.default_rng(7))
    return {"train": train, "test": test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--per-class", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sizes = build(args.shared, args.per_class, args.seed, args.out)
    print(f"wrote {args.out}: {sizes['train']} train rows, {sizes['test']} test rows")


if __name__ == "__main__":
    main()
