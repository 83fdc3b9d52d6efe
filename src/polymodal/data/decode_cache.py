"""A cache of decoded CSV manifests: repeated evaluations, resumed runs and runs over the same files decode once.

Decoding (reading every image and recording, resizing, resampling, computing spectrograms) is what a CSV manifest
costs; its result depends only on the files and the adapter settings. An entry holds the decoded tensors of one
manifest under one set of settings, in one uncompressed ``.npz`` per (manifest path, settings, columns), so trying
other settings adds entries and a changed file replaces its entry. The entry is used only when its key matches the
sha256 of the manifest, of every file its cells name and of the tokenizer or processor folders the settings name,
together with the settings, the columns and the versions of polymodal, torch and numpy; anything else is decoded
anew and written over it.

The cache folder is the user's, shared by every run: ``$POLYMODAL_CACHE`` when set (``off`` disables the cache),
else ``$XDG_CACHE_HOME/polymodal``, else ``~/.cache/polymodal``; entries go under ``manifests/`` and can be deleted
at any time. Entries are written atomically (temporary file, fsync, rename), so concurrent runs never read half an
entry; one that cannot be read is decoded again with one line on stderr.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polymodal import __version__
from polymodal.data.vocab import is_sequence, modality_kind
from polymodal.fileio import atomic_path, sha256_file, user_cache_folder
from polymodal.progress import say

FORMAT = 1
# Settings fields that name a folder whose files change what decoding produces (a tokenizer's vocabulary).
FOLDER_SETTINGS = ("tokenizer", "processor")
# Files in such a folder above this size (model weights) are keyed by size and modification time, not content.
MAX_HASHED_BYTES = 64 * 1024 * 1024

Decoded = tuple[dict[str, list[Tensor | None]], dict[str, list[str]]]


def cache_folder() -> Path | None:
    """The decode cache's folder, or None when ``POLYMODAL_CACHE=off``."""
    return user_cache_folder("manifests")


def _folder_digest(folder: Path) -> list[Any]:
    """(name, sha256) of every file under ``folder``; (name, size, mtime) for files over ``MAX_HASHED_BYTES``."""
    entries: list[Any] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        name = str(path.relative_to(folder))
        big = stat.st_size > MAX_HASHED_BYTES
        entries.append([name, stat.st_size, stat.st_mtime_ns] if big else [name, sha256_file(path)])
    return entries


class DecodeCache:
    """The cache entry of one manifest decoded with given settings.

    Args:
        folder: the cache folder (:func:`cache_folder`).
        manifest: the CSV manifest.
        columns: ``{input name: column}`` of the inputs decoded, in order.
        settings: the adapter settings of each adapter kind used (``{"image": {...}}``, as ``model_dump`` gives them).
    """

    def __init__(
        self, folder: Path, manifest: Path, columns: Mapping[str, str], settings: Mapping[str, dict[str, Any]]
    ) -> None:
        self.manifest = Path(manifest).resolve()
        self.columns = dict(columns)
        self.settings = {k: settings[k] for k in sorted(settings)}
        slot = json.dumps([str(self.manifest), list(self.columns.items()), self.settings], sort_keys=True)
        self.path = Path(folder) / f"{hashlib.sha256(slot.encode()).hexdigest()[:32]}.npz"

    def key(self, files: Sequence[Path | None]) -> str | None:
        """The content key: hashes of the manifest, of ``files`` (every file a cell names, None for text and empty
        cells) and of the folders the settings name, with the settings, columns and versions; None when a file is
        missing (decoding reports it)."""
        digest = hashlib.sha256()
        folders = {}
        for kind, values in self.settings.items():
            for name in FOLDER_SETTINGS:
                if values.get(name) and Path(values[name]).is_dir():
                    folders[f"{kind}.{name}"] = _folder_digest(Path(values[name]))
        header = {
            "format": FORMAT,
            "versions": [__version__, torch.__version__, np.__version__],
            "manifest": sha256_file(self.manifest),
            "columns": list(self.columns.items()),
            "settings": self.settings,
            "folders": folders,
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        for file in files:
            if file is None:
                digest.update(b"-\n")
                continue
            if not file.is_file():
                return None
            digest.update(f"{file}\0{sha256_file(file)}\n".encode())
        return digest.hexdigest()

    def load(self, key: str, rows: int) -> Decoded | None:
        """The decoded inputs and raw cells stored under ``key``, or None (no entry, or one for other contents).

        An entry that cannot be read is reported on stderr and treated as absent (it is rewritten after decoding).
        """
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                if str(archive["key"]) != key:
                    return None
                meta = json.loads(str(archive["meta"]))
                if meta["rows"] != rows or meta["modalities"] != list(self.columns):
                    raise ValueError("entry does not match its key")
                inputs = {m: self._split(m, archive, i, rows) for i, m in enumerate(meta["modalities"])}
            return inputs, {m: list(meta["cells"][m]) for m in self.columns}
        except Exception as err:  # a truncated or overwritten file: zipfile, numpy and json raise many kinds
            say(f"polymodal: note: {self.path}: unreadable decode cache entry ({type(err).__name__}); decoding again")
            return None

    @staticmethod
    def _split(modality: str, archive: Any, i: int, rows: int) -> list[Tensor | None]:
        values = torch.from_numpy(archive[f"values{i}"])
        offsets, present = archive[f"offsets{i}"], archive[f"present{i}"]
        if len(offsets) != rows + 1 or len(present) != rows or int(offsets[-1]) != len(values):
            raise ValueError("inconsistent offsets")
        if is_sequence(modality):
            return [values[offsets[r] : offsets[r + 1]] if present[r] else None for r in range(rows)]
        return [values[offsets[r]] if present[r] else None for r in range(rows)]

    def save(self, key: str, inputs: Mapping[str, Sequence[Tensor | None]], cells: Mapping[str, list[str]]) -> None:
        """Writes the entry atomically; a cache that cannot be written is reported on stderr and skipped."""
        rows = len(next(iter(inputs.values()))) if inputs else 0
        arrays: dict[str, np.ndarray] = {
            "key": np.array(key),
            "meta": np.array(json.dumps({"rows": rows, "modalities": list(inputs), "cells": dict(cells)})),
        }
        try:
            for i, (m, values) in enumerate(inputs.items()):
                arrays.update(self._pack(m, values, i))
            with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
                np.savez(f, allow_pickle=True, **arrays)
        except (OSError, ValueError) as err:
            say(f"polymodal: note: decode cache not written ({self.path}: {' '.join(str(err).split())})")

    @staticmethod
    def _pack(modality: str, values: Sequence[Tensor | None], i: int) -> dict[str, np.ndarray]:
        """A modality's values concatenated (sequences) or stacked (fixed shapes), with offsets and presence."""
        present = np.array([v is not None for v in values], dtype=bool)
        kept = [v.numpy() for v in values if v is not None]
        sizes = [len(v) if is_sequence(modality) else 1 for v in kept]
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        offsets[1:][present] = sizes
        offsets = np.cumsum(offsets)
        if not kept:
            stacked = np.zeros(0, dtype=np.int64 if modality_kind(modality) == "text" else np.float32)
        else:
            stacked = np.concatenate(kept) if is_sequence(modality) else np.stack(kept)
        return {f"values{i}": stacked, f"offsets{i}": offsets, f"present{i}": present}
