"""Preprocessing fitted to a manifest's training files (image size/colour, audio rate/length, text length)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile

from polymodal.config import data_config
from polymodal.data.config import DataConfig
from polymodal.data.fitting import describe_preprocessing, fit_manifest_settings


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _files(root: Path) -> Path:
    """Three images (28 px gray, 48 px RGB, 64 px gray) and three clips (8 kHz 0.5 s, 16 kHz 1 s, 44.1 kHz 2 s)."""
    Image.new("L", (28, 28)).save(root / "a.png")
    Image.new("RGB", (48, 60)).save(root / "b.png")
    Image.new("L", (64, 64)).save(root / "c.png")
    wavfile.write(root / "a.wav", 8000, np.zeros(4000, dtype=np.int16))
    wavfile.write(root / "b.wav", 16000, np.zeros(16000, dtype=np.int16))
    wavfile.write(root / "c.wav", 44100, np.zeros((88200, 2), dtype=np.int16))
    rows = [[f"{k}.png", f"{k}.wav", "x" * n, "0"] for k, n in (("a", 5), ("b", 10), ("c", 30))]
    return write_csv(root / "train.csv", ["photo", "clip", "note", "label"], rows)


def test_fits_unset_settings_to_the_files(tmp_path: Path):
    data = DataConfig(name="manifest", train=str(_files(tmp_path)), test="t.csv")
    report = fit_manifest_settings(data)
    # Colour kept (one colour file), median short side 48 px; the lowest rate (8 kHz), a 256-sample window, and
    # clips of the 90 % quantile duration: 0.5 s, 1 s, 2 s -> 1.8 s -> ceil(1.8 * 8000 / 128) + 1 = 114 frames.
    assert (data.image.channels, data.image.size) == (3, 48)
    assert (data.audio.sample_rate, data.audio.n_fft, data.audio.hop_length) == (8000, 256, 128)
    assert data.audio.max_frames == 114 and data.audio.crop == "loudest"
    # 99 % of the texts whole, rounded up to 8 bytes: quantile of (5, 10, 30) = 29.6 -> 32.
    assert data.text.max_length == 32
    assert report["image"]["from"]["colour_files"] == 1 and report["audio"]["from"]["sample_rates_hz"] == [
        8000,
        16000,
        44100,
    ]
    lines = describe_preprocessing(data, {"image": (3, 48, 48), "audio": (1, 32, 114), "text": ()}, report)
    assert "image: 3x48x48 RGB (fitted to 3 files: size=48, channels=3)" in lines
    assert "audio: 8000 Hz mono, 32 mel bands x 114 frames (1.82 s, loudest crop)" in lines


def test_settings_given_by_the_config_are_kept(tmp_path: Path):
    train = _files(tmp_path)
    data = data_config(
        [
            "name=manifest",
            f"train={train}",
            "test=t.csv",
            "image.size=32",
            "audio.sample_rate=16000",
            "text.max_length=64",
        ]
    )
    report = fit_manifest_settings(data)
    assert (data.image.size, data.image.channels) == (32, 3)  # size kept, channels fitted
    assert data.audio.sample_rate == 16000 and data.audio.n_fft == 256  # rate set: its window is not refitted
    # The clip length is still fitted, at the set rate and the default hop: ceil(1.8 * 16000 / 128) + 1 = 226.
    assert data.audio.max_frames == 226 and data.audio.crop == "loudest"
    assert data.text.max_length == 64 and "text" not in report
    assert report["image"]["set_by_config"] == ["size"]
    # A resolved config (every field set, as in config.yaml) is never refitted.
    again = DataConfig(**data.model_dump())
    assert fit_manifest_settings(again)["image"]["chosen"] == {}
