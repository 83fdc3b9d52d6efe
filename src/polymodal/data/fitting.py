"""Preprocessing fitted to the user's training files: image size and colour, audio rate and clip length, text length.

The adapters' defaults suit the embedded digits (28 px gray, 8 kHz, 1 s); a user's photos and recordings are not
that. For CSV manifests, every adapter setting that the recipe or the command line did not set is chosen from the
training manifest's files (headers only, nothing decoded), then written into the run's resolved ``config.yaml`` and
explained in ``run.json`` (``preprocessing``) and at the start of training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.data.config import DataConfig
from polymodal.data.manifest import ManifestDataset, read_manifest
from polymodal.data.vocab import modality_kind

# Gray image modes of Pillow; every other mode (RGB, RGBA, P, CMYK, YCbCr, ...) is colour.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"})
# Fitted image sizes: small CNNs trained from scratch gain little beyond 64 px and cost quadratically more.
IMAGE_SIZE_RANGE = (16, 64)
# Fitted sample rates: no file is upsampled past its own band, and speech/sound models rarely need over 16 kHz.
SAMPLE_RATE_RANGE = (8000, 16000)
# STFT window of about 32 ms, hop of half a window (the 8 kHz defaults: 256 and 128 samples).
WINDOW_SECONDS = 0.032
# Clip length: frames that hold this quantile of the training recordings whole.
DURATION_QUANTILE = 0.9
MAX_FRAMES_RANGE = (8, 1024)
TEXT_LENGTH_RANGE = (8, 512)


def _image_header(path: Path) -> tuple[int, int, bool] | None:
    """(height, width, colour) of an image file or ``.npy`` array, from its header; None if unreadable."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.ndim not in (2, 3):
                return None
            return int(arr.shape[0]), int(arr.shape[1]), arr.ndim == 3 and arr.shape[2] >= 3
        from PIL import Image

        with Image.open(path) as img:
            return img.height, img.width, img.mode not in GRAY_MODES
    except Exception:  # the decoder reports unreadable files with their row and column
        return None


def _audio_header(path: Path) -> tuple[int, float] | None:
    """(sample rate, seconds) of a sound file from its header; None if unreadable."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # reported by the decoder
        return None
    if info.samplerate <= 0 or info.frames <= 0:
        return None
    return int(info.samplerate), info.frames / info.samplerate


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(value, bounds[0]), bounds[1]))


def _files(rows: list[dict[str, str]], columns: list[str], folder: Path) -> list[Path]:
    files = []
    for row in rows:
        for column in columns:
            if row.get(column):
                path = Path(row[column]).expanduser()
                files.append(path if path.is_absolute() else folder / path)
    return files


def _fit_image(files: list[Path], fixed: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = [h for h in map(_image_header, files) if h is not None]
    if not headers:
        return {}, {}
    sides = np.array([min(h, w) for h, w, _ in headers])
    colour = sum(c for *_, c in headers)
    chosen: dict[str, Any] = {}
    if "size" not in fixed:
        chosen["size"] = _clamp(4 * round(float(np.median(sides)) / 4), IMAGE_SIZE_RANGE)
    if "channels" not in fixed:
        chosen["channels"] = 3 if colour else 1
    why = {
        "files": len(headers),
        "short_side_px": {"min": int(sides.min()), "median": float(np.median(sides)), "max": int(sides.max())},
        "colour_files": int(colour),
    }
    return chosen, why


def _fit_audio(files: list[Path], fixed: set[str], current: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = [h for h in map(_audio_header, files) if h is not None]
    if not headers:
        return {}, {}
    rates = np.array([r for r, _ in headers])
    seconds = np.array([s for _, s in headers])
    chosen: dict[str, Any] = {}
    rate = _clamp(int(rates.min()), SAMPLE_RATE_RANGE) if "sample_rate" not in fixed else None
    if rate is not None:
        chosen["sample_rate"] = rate
        window = 2 ** round(math.log2(WINDOW_SECONDS * rate))
        if "n_fft" not in fixed:
            chosen["n_fft"] = window
        if "hop_length" not in fixed:
            chosen["hop_length"] = window // 2
    if "max_frames" not in fixed:  # with the rate and hop as chosen, or as the config sets them
        hop, rate = chosen.get("hop_length", current.hop_length), chosen.get("sample_rate", current.sample_rate)
        covered = float(np.quantile(seconds, DURATION_QUANTILE))
        chosen["max_frames"] = _clamp(math.ceil(covered * rate / hop) + 1, MAX_FRAMES_RANGE)
        if "crop" not in fixed:
            chosen["crop"] = "loudest"
    why = {
        "files": len(headers),
        "sample_rates_hz": sorted({int(r) for r in rates}),
        "seconds": {
            "min": round(float(seconds.min()), 3),
            "median": round(float(np.median(seconds)), 3),
            "max": round(float(seconds.max()), 3),
        },
    }
    return chosen, why


def _fit_text(texts: list[str], fixed: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    if not texts or "max_length" in fixed:
        return {}, {}
    lengths = np.array([len(t.encode("utf-8")) for t in texts])
    length = _clamp(8 * math.ceil(float(np.quantile(lengths, 0.99)) / 8), TEXT_LENGTH_RANGE)
    return {"max_length": length}, {
        "texts": len(texts),
        "bytes": {"median": float(np.median(lengths)), "max": int(lengths.max())},
    }


def fit_manifest_settings(data: DataConfig) -> dict[str, Any]:
    """Fits ``data.image``, ``data.audio`` and ``data.text`` to the training manifest, in place.

    Only settings the config did not set are chosen: images keep colour when any training image has it and take
    the median short side (16-64 px); audio takes the lowest sample rate of the recordings (8-16 kHz, so no file
    is upsampled past its own band), a ~32 ms window, clips long enough for 90 % of the recordings whole, and longer
    ones cropped to their loudest part; text keeps 99 % of the texts whole.

    Args:
        data: a validated ``DataConfig`` of a CSV manifest.

    Returns:
        ``{kind: {"chosen": {...}, "set_by_config": [...], "from": {...statistics...}}}`` for each fitted kind
        (none without ``data.train``).
    """
    if not data.train:
        return {}  # the manifest source reports the missing data.train
    header, rows = read_manifest(Path(data.train))
    declared = data.modalities if isinstance(data.modalities, dict) else None
    if declared is None and data.target not in header:
        return {}  # the dataset reports the missing target column
    mapping = ManifestDataset._resolve_columns(header, rows, data.target, declared, str(data.train))
    by_kind: dict[str, list[str]] = {}
    for column, name in mapping.items():
        by_kind.setdefault(modality_kind(name), []).append(column)
    folder = Path(data.train).parent
    report: dict[str, Any] = {}
    fitters = {
        "image": lambda fixed: _fit_image(_files(rows, by_kind["image"], folder), fixed),
        "audio": lambda fixed: _fit_audio(_files(rows, by_kind["audio"], folder), fixed, data.audio),
        "text": lambda fixed: _fit_text([r[c] for r in rows for c in by_kind["text"] if r[c]], fixed),
    }
    for kind, fit in fitters.items():
        if kind not in by_kind:
            continue
        current = getattr(data, kind)
        fixed = set(current.model_fields_set)
        chosen, why = fit(fixed)
        if chosen:
            setattr(data, kind, type(current).model_validate({**current.model_dump(), **chosen}))
        if chosen or why:
            report[kind] = {"chosen": chosen, "set_by_config": sorted(fixed), "from": why}
    return report


def describe_preprocessing(
    data: DataConfig, modalities: Mapping[str, tuple[int, ...]], report: Mapping[str, Any]
) -> str:
    """Lines that say how each input is converted, and which settings were fitted to the files."""
    lines = []
    for name, shape in modalities.items():
        kind = modality_kind(name)
        fitted = report.get(kind, {})
        chosen = ", ".join(f"{k}={v}" for k, v in fitted.get("chosen", {}).items())
        source = f"{fitted['from']['files']} files" if "files" in fitted.get("from", {}) else "the texts"
        note = f" (fitted to {source}: {chosen})" if chosen else ""
        if kind == "image":
            colour = "RGB" if data.image.channels == 3 else "gray"
            what = f"{data.image.channels}x{data.image.size}x{data.image.size} {colour}"
        elif kind == "audio":
            a = data.audio
            clip = a.max_frames * a.hop_length / a.sample_rate
            what = (
                f"{a.sample_rate} Hz mono, {a.n_mels} mel bands x {a.max_frames} frames ({clip:.2f} s, {a.crop} crop)"
            )
        elif kind == "text":
            what = f"byte tokens, at most {data.text.max_length}"
        else:
            what = f"feature sequences of width {shape[-1] if shape else '?'}"
        lines.append(f"  {name}: {what}{note}")
    return "\n".join(lines)
