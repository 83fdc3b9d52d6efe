"""Multimodal sentiment data: MMSA and MulT feature files, the CMU-MOSI word-aligned npz and MOSI transcripts.

Every source becomes a :class:`SequenceDataset` over three streams: ``text`` (word feature vectors, or byte tokens
of the raw words), ``acoustic`` and ``vision`` (per-step descriptor vectors), with a float sentiment target.

MMSA and MulT publish their features as pickles, and unpickling can run arbitrary code. A pickle is therefore read
only when the caller says it trusts the file (``data.trust_pickle=true``, ``--trust-pickle``), and even then through
an unpickler that accepts only the numpy globals such files use. It is converted once into a ``.npz`` cache next to
it (``<name>.polymodal.npz``), which later runs load with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import io
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from polymodal.errors import ConfigError, DataError
from polymodal.modalities.text import TextAdapter, TextConfig

SPLITS = ("train", "valid", "test")
STREAMS = ("text", "acoustic", "vision")
# Names of each stream in the published pickles: MMSA and MulT both say audio/vision.
SOURCE_KEYS = {"text": "text", "acoustic": "audio", "vision": "vision"}
# The only globals a numpy-array pickle needs; anything else (os.system, eval, ...) is refused.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_GLOBALS:
            raise DataError(f"refuses to unpickle {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)


def read_trusted_pickle(path: Path) -> Any:
    """Unpickles ``path`` allowing only numpy array globals; any other global is a DataError."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as err:
        raise DataError(f"{path}: not a readable pickle ({' '.join(str(err).split()) or type(err).__name__})") from None


def cache_path(path: Path) -> Path:
    """Where the safe conversion of a pickle lives: ``<name>.polymodal.npz`` beside it."""
    return path.with_name(f"{path.stem}.polymodal.npz")


def _span(steps: np.ndarray) -> np.ndarray:
    """Drops all-zero padding steps before the first and after the last non-zero step (at least one step kept)."""
    nonzero = np.flatnonzero(np.abs(steps.reshape(steps.shape[0], -1)).sum(1) > 0)
    return steps[nonzero[0] : nonzero[-1] + 1] if len(nonzero) else steps[:1]


def _split_arrays(split: Mapping[str, Any], fmt: str, where: str) -> dict[str, np.ndarray]:
    """One split of an MMSA or MulT dict as flat arrays: per stream ``(sum L, D)`` rows and ``(N,)`` lengths."""
    label_key = "regression_labels" if fmt == "mmsa" else "labels"
    if label_key not in split:
        raise DataError(f"{where}: no {label_key!r} (is this a {fmt} file? it has: {', '.join(map(str, split))})")
    labels = np.asarray(split[label_key], dtype=np.float32).reshape(-1)
    n = len(labels)
    out: dict[str, np.ndarray] = {"label": labels}
    ids = split.get("id")
    out["id"] = np.array(
        ["_".join(map(str, np.atleast_1d(i))) for i in ids] if ids is not None else [str(i) for i in range(n)]
    )
    text_mask = np.asarray(split["text_bert"])[:, 1].sum(1).astype(np.int64) if "text_bert" in split else None
    for stream in STREAMS:
        key = SOURCE_KEYS[stream]
        if key not in split:
            if stream == "text" and "raw_text" in split:
                out["raw_text"] = np.array([str(t) for t in split["raw_text"]])
                continue
            raise DataError(f"{where}: no {key!r} features")
        values = np.asarray(split[key], dtype=np.float32)
        if values.ndim != 3 or values.shape[0] != n:
            raise DataError(f"{where}: {key!r} has shape {values.shape}, expected ({n}, L, D)")
        # Published COVAREP features contain -inf where a frame was silent; MMSA sets those to 0 before training.
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        given = split.get(f"{key}_lengths")
        if given is None and stream == "text":
            given = text_mask
        if given is not None:
            lengths = np.clip(np.asarray(given, dtype=np.int64).reshape(-1), 1, values.shape[1])
            seqs = [values[i, : lengths[i]] for i in range(n)]
        else:
            seqs = [_span(values[i]) for i in range(n)]
        out[stream] = np.concatenate(seqs)
        out[f"{stream}_lengths"] = np.array([len(s) for s in seqs], dtype=np.int64)
    return out


def convert_pickle(path: Path, fmt: str, trust_pickle: bool) -> Path:
    """Converts an MMSA or MulT pickle into the safe ``.npz`` cache once and returns the cache's path.

    Args:
        path: the ``.pkl`` file.
        fmt: ``"mmsa"`` or ``"mult"``.
        trust_pickle: the caller's explicit consent to read a pickle.

    Raises:
        ConfigError: ``trust_pickle`` is false (one line saying why and how to consent).
        DataError: missing, unreadable or malformed file, or a pickle that references non-numpy globals.
    """
    cache = cache_path(path)
    if cache.is_file():
        return cache
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not trust_pickle:
        raise ConfigError(
            f"{path}: is a pickle, and loading a pickle can run arbitrary code; if you trust this file, pass "
            "--trust-pickle (data.trust_pickle=true) to convert it once into a safe .npz cache"
        )
    data = read_trusted_pickle(path)
    if not isinstance(data, Mapping) or not all(s in data for s in SPLITS):
        raise DataError(f"{path}: expected a dict with {', '.join(SPLITS)} splits ({fmt} format)")
    arrays = {}
    for split in SPLITS:
        arrays.update({f"{split}_{k}": v for k, v in _split_arrays(data[split], fmt, f"{path} [{split}]").items()})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **arrays)
    try:
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(cache)
    except OSError as err:
        raise DataError(
            f"{cache}: cannot write the safe cache ({err.strerror}); copy the pickle to a writable folder"
        ) from None
    return cache


def load_cache(path: Path, split: str) -> dict[str, np.ndarray]:
    """One split of a safe cache (or any ``.npz`` in its layout), read with ``allow_pickle=False``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    prefix = f"{split}_"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k.removeprefix(prefix): archive[k] for k in archive.files if k.startswith(prefix)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({' '.join(str(err).split())})") from None
    if "label" not in arrays:
        raise DataError(f"{path}: no {prefix}label array (not a polymodal sentiment cache?)")
    return arrays


class SequenceDataset(Dataset):
    """Samples of variable-length streams with a float target.

    Args:
        targets: (N,) sentiment scores.
        streams: modality -> ``(rows, lengths)``: rows (sum L, D) float (or (sum L,) int64 token ids), lengths (N,).
        ids: (N,) sample names.
    """

    def __init__(
        self, targets: np.ndarray, streams: Mapping[str, tuple[np.ndarray, np.ndarray]], ids: Sequence[str]
    ) -> None:
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.ids = list(ids)
        self.modalities = list(streams)
        self._rows, self._offsets = {}, {}
        for m, (rows, lengths) in streams.items():
            if len(lengths) != len(self.targets):
                raise DataError(f"{m}: {len(lengths)} sequences for {len(self.targets)} targets")
            self._rows[m] = torch.as_tensor(rows)
            self._offsets[m] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        inputs = {m: self._rows[m][self._offsets[m][i] : self._offsets[m][i + 1]] for m in self.modalities}
        return {"inputs": inputs, "target": self.targets[i], "index": i}

    def subset(self, indices: Sequence[int]) -> SequenceDataset:
        """A new dataset of the given samples, in that order."""
        streams = {}
        for m in self.modalities:
            parts = [self._rows[m][self._offsets[m][i] : self._offsets[m][i + 1]] for i in indices]
            rows = torch.cat(parts) if parts else self._rows[m][:0]
            streams[m] = (rows.numpy(), np.array([len(p) for p in parts], dtype=np.int64))
        return SequenceDataset(self.targets[list(indices)].numpy(), streams, [self.ids[i] for i in indices])


def _tokens(texts: Sequence[str], text: TextConfig | None) -> tuple[np.ndarray, np.ndarray]:
    adapter = TextAdapter(text or TextConfig())
    ids = [adapter.from_text(t).numpy() for t in texts]
    return np.concatenate(ids), np.array([len(t) for t in ids], dtype=np.int64)


def cached_split(arrays: Mapping[str, np.ndarray], text: TextConfig | None = None) -> SequenceDataset:
    """A dataset from one split of the safe cache layout (raw text becomes byte tokens when no text features)."""
    streams = {}
    for stream in STREAMS:
        if stream in arrays:
            streams[stream] = (arrays[stream].astype(np.float32), arrays[f"{stream}_lengths"])
        elif stream == "text" and "raw_text" in arrays:
            streams[stream] = _tokens([str(t) for t in arrays["raw_text"]], text)
    return SequenceDataset(arrays["label"], streams, [str(i) for i in arrays["id"]])


def load_feature_file(path: str | Path, fmt: str, trust_pickle: bool, text: TextConfig | None = None) -> dict:
    """Train/valid/test datasets of an MMSA or MulT file: a pickle (converted once, with consent) or its cache.

    Args:
        path: the ``.pkl`` file, or a ``.npz`` in the cache layout.
        fmt: ``"mmsa"`` or ``"mult"``.
        trust_pickle: consent to read a pickle (see :func:`convert_pickle`).
        text: tokenizer settings, used when a file has raw text but no text features.

    Returns:
        ``{"train": SequenceDataset, "valid": ..., "test": ...}``.
    """
    path = Path(path)
    npz = path if path.suffix == ".npz" else convert_pickle(path, fmt, trust_pickle)
    return {split: cached_split(load_cache(npz, split), text) for split in SPLITS}


def video_folds(videos: Sequence[str], folds: int, fold: int) -> tuple[list[int], list[int], list[int]]:
    """Video-disjoint train/val/test indices: sorted videos go round-robin to folds; test is ``fold``, val the next.

    Args:
        videos: (N,) video id of each sample.
        folds: number of folds, at least 3 and at most the number of videos.
        fold: which fold is the test fold, in ``[0, folds)``.
    """
    names = sorted(set(videos))
    if not 3 <= folds <= len(names):
        raise ConfigError(f"data.folds: must be between 3 and the {len(names)} videos, got {folds}")
    if not 0 <= fold < folds:
        raise ConfigError(f"data.fold: must be in [0, {folds}), got {fold}")
    group = {v: i % folds for i, v in enumerate(names)}
    test = [i for i, v in enumerate(videos) if group[v] == fold]
    val = [i for i, v in enumerate(videos) if group[v] == (fold + 1) % folds]
    train = [i for i, v in enumerate(videos) if group[v] not in (fold, (fold + 1) % folds)]
    return train, val, test


def load_mosi_word_aligned(path: str | Path, text: TextConfig | None = None) -> tuple[SequenceDataset, list[str]]:
    """CMU-MOSI word-aligned features from the MISA-derived npz (``misa/dev_word_aligned.npz``), without pickle.

    Text is the byte tokens of the aligned words joined by spaces; ``vision`` is FACET (47-d) and ``acoustic``
    COVAREP (74-d), one step per word.

    Args:
        path: the npz, or a folder holding ``misa/dev_word_aligned.npz``.
        text: tokenizer settings.

    Returns:
        The dataset and the video id of each sample.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "misa" / "dev_word_aligned.npz"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            a = {k: archive[k] for k in ("segment_id", "label", "offsets", "visual", "acoustic", "words")}
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (not the MOSI word-aligned npz?)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({' '.join(str(err).split())})") from None
    offsets = a["offsets"]
    lengths = np.diff(offsets)
    sentences = [" ".join(str(w) for w in a["words"][offsets[i] : offsets[i + 1]]) for i in range(len(lengths))]
    streams = {
        "text": _tokens(sentences, text),
        "acoustic": (a["acoustic"].astype(np.float32), lengths),
        "vision": (a["visual"].astype(np.float32), lengths),
    }
    ids = [str(s) for s in a["segment_id"]]
    return SequenceDataset(a["label"], streams, ids), [s.split("[")[0] for s in ids]


def load_mosi_transcripts(path: str | Path, text: TextConfig | None = None) -> dict[str, SequenceDataset]:
    """CMU-MOSI transcripts and labels on the official split (``labels_splits.csv``); text is the only stream.

    Args:
        path: the CSV, or a folder holding ``labels_splits.csv``.
        text: tokenizer settings.

    Returns:
        ``{"train": ..., "valid": ..., "test": ...}`` (1284 / 229 / 686 segments; 4 have an empty transcript).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "labels_splits.csv"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"segment_id", "label", "split", "text"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    out = {}
    for split in SPLITS:
        chosen = [r for r in rows if r["split"] == split]
        labels = np.array([float(r["label"]) for r in chosen], dtype=np.float32)
        out[split] = SequenceDataset(
            labels, {"text": _tokens([r["text"] for r in chosen], text)}, [r["segment_id"] for r in chosen]
        )
    return out
