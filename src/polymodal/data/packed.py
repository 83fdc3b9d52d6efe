"""Packed datasets: a CSV manifest decoded once into memory-mapped ``.npy`` shards, read lazily during training.

``polymodal data pack MANIFEST --out DIR`` writes, per shard of ``shard_size`` samples::

    shard-00000.<modality>.npy          (n, *shape) fixed-size modalities (image, audio), zeros where missing
    shard-00000.<modality>.npy          (sum of lengths, *step) sequence modalities (text, features), concatenated
    shard-00000.<modality>.offsets.npy  (n + 1,) int64: sample i is rows offsets[i]:offsets[i + 1]
    shard-00000.present.npy             (n, M) bool, one column per modality
    shard-00000.target.npy              (n,) class indices (int64) or regression targets (float32)

and ``index.json`` last (so its presence marks a complete pack) with the shapes, dtypes, class names, manifest
columns, the adapter settings used and the sha256 of every file. :class:`PackedDataset` opens the files with
``np.load(mmap_mode="r")``: only the samples a batch asks for are read, so the data need not fit in memory.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from polymodal.data.manifest import ManifestDataset
from polymodal.data.vocab import is_sequence
from polymodal.errors import DataError
from polymodal.fileio import atomic_write_text, read_json_object, sha256_file

FORMAT = "polymodal-packed"
VERSION = 1


def _save(path: Path, array: np.ndarray) -> str:
    """Writes ``array`` to ``path`` through a temporary file and rename; returns its sha256."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return sha256_file(path)


def _shard_arrays(dataset: ManifestDataset, indices: range, bar: Any) -> dict[str, np.ndarray]:
    modalities = list(dataset.modalities)
    present = np.zeros((len(indices), len(modalities)), dtype=bool)
    values: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    targets = []
    for row, i in enumerate(indices):
        sample = dataset[i]
        for k, m in enumerate(modalities):
            value = sample["inputs"][m]
            present[row, k] = value is not None
            if value is None:
                shape = (0, *dataset.shapes[m]) if is_sequence(m) else dataset.shapes[m]
                value = torch.zeros(shape, dtype=dataset.dtypes[m])
            values[m].append(value.numpy())
        targets.append(np.asarray(sample["target"]))
        bar.update(1)
    arrays = {"present": present, "target": np.stack(targets)}
    for m in modalities:
        if is_sequence(m):
            lengths = [len(v) for v in values[m]]
            arrays[f"{m}.offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            arrays[m] = np.concatenate(values[m])
        else:
            arrays[m] = np.stack(values[m])
    return arrays


def pack_dataset(
    dataset: ManifestDataset, out: Path, shard_size: int, settings: dict[str, Any], progress: bool
) -> dict:
    """Writes a decoded manifest as shards under ``out``; returns the ``index.json`` contents.

    Args:
        dataset: the decoded manifest.
        out: the pack's folder (created; must not hold a pack already).
        shard_size: samples per shard.
        settings: the adapter settings the manifest was decoded with (recorded in the index).
        progress: show a progress bar.
    """
    out = Path(out)
    if (out / "index.json").exists():
        raise DataError(f"{out}: already holds a packed dataset (index.json exists); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    with tqdm(total=len(dataset), desc=f"packing {out.name}", unit="sample", disable=None if progress else True) as bar:
        for number, start in enumerate(range(0, len(dataset), shard_size)):
            indices = range(start, min(start + shard_size, len(dataset)))
            name = f"shard-{number:05d}"
            files = {}
            for key, array in _shard_arrays(dataset, indices, bar).items():
                file = f"{name}.{key}.npy"
                files[key] = {"file": file, "sha256": _save(out / file, array)}
            shards.append({"name": name, "size": len(indices), "files": files})
    index = {
        "format": FORMAT,
        "version": VERSION,
        "manifest": str(dataset.path),
        "task": dataset.task,
        "modalities": list(dataset.modalities),
        "columns": dict(dataset.columns),
        "shapes": {m: list(s) for m, s in dataset.shapes.items()},
        "dtypes": {m: str(d).removeprefix("torch.") for m, d in dataset.dtypes.items()},
        "class_names": list(dataset.class_names),
        "num_samples": len(dataset),
        "settings": settings,
        "shards": shards,
    }
    atomic_write_text(out / "index.json", json.dumps(index, indent=2))
    return index


class PackedDataset(torch.utils.data.Dataset):
    """A packed dataset read lazily from its memory-mapped shards, in the sample format of ``ManifestDataset``.

    Every file's sha256 is checked when the dataset is opened (streamed, nothing is kept in memory), so a corrupt
    shard fails before training starts rather than in the middle of an epoch.

    Args:
        folder: the pack's folder (holding ``index.json``).
        class_names: classification only: the label set to index targets by (e.g. the training pack's, for a test
            pack); a class of this pack outside it is an error. Default: this pack's own class names.
        verify: check every file's checksum on opening.

    Attributes:
        modalities, columns, shapes, dtypes, class_names, task: as recorded by ``pack_dataset``.
    """

    def __init__(self, folder: str | Path, class_names: list[str] | None = None, verify: bool = True) -> None:
        self.folder = Path(folder)
        index_path = self.folder / "index.json"
        if not index_path.is_file():
            raise DataError(f"{self.folder}: not a packed dataset (no index.json; make one with `polymodal data pack`)")
        index = read_json_object(index_path)
        if index.get("format") != FORMAT or index.get("version") != VERSION:
            raise DataError(f"{index_path}: not a {FORMAT} index of version {VERSION}")
        self.index = index
        self.task: str = index["task"]
        self.modalities: tuple[str, ...] = tuple(index["modalities"])
        self.columns: dict[str, str] = index["columns"]
        self.shapes = {m: tuple(s) for m, s in index["shapes"].items()}
        self.dtypes = {m: getattr(torch, d) for m, d in index["dtypes"].items()}
        own = list(index["class_names"])
        self.class_names = list(class_names) if class_names is not None else own
        self._target_map: np.ndarray | None = None
        if self.task == "classification" and own != self.class_names:
            missing = [c for c in own if c not in self.class_names]
            if missing:
                raise DataError(f"{index_path}: classes {missing[:5]} are not among the training classes")
            self._target_map = np.array([self.class_names.index(c) for c in own], dtype=np.int64)
        self._shards = index["shards"]
        self._starts = np.cumsum([0] + [s["size"] for s in self._shards]).tolist()
        if verify:
            self.verify()
        self._open: dict[tuple[int, str], np.ndarray] = {}

    def verify(self) -> None:
        """Raises a one-line DataError naming the first file that is missing or fails its checksum."""
        for shard in self._shards:
            for entry in shard["files"].values():
                path = self.folder / entry["file"]
                if not path.is_file():
                    raise DataError(f"{path}: shard file missing")
                if sha256_file(path) != entry["sha256"]:
                    raise DataError(f"{path}: checksum mismatch (truncated or corrupted shard; pack again)")

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each DataLoader worker instead of being pickled (which would copy them).
        return {**self.__dict__, "_open": {}}

    def _array(self, shard: int, key: str) -> np.ndarray:
        if (shard, key) not in self._open:
            path = self.folder / self._shards[shard]["files"][key]["file"]
            try:
                self._open[(shard, key)] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataError(f"{path}: unreadable shard ({' '.join(str(err).split())})") from None
        return self._open[(shard, key)]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = bisect.bisect_right(self._starts, index) - 1
        row = index - self._starts[shard]
        present = self._array(shard, "present")[row]
        inputs: dict[str, torch.Tensor | None] = {}
        for k, m in enumerate(self.modalities):
            if not present[k]:
                inputs[m] = None
            elif is_sequence(m):
                start, stop = self._array(shard, f"{m}.offsets")[row : row + 2]
                inputs[m] = torch.from_numpy(np.array(self._array(shard, m)[start:stop]))
            else:
                inputs[m] = torch.from_numpy(np.array(self._array(shard, m)[row]))
        target = self._array(shard, "target")[row]
        if self._target_map is not None:
            target = self._target_map[target]
        return {"inputs": inputs, "target": torch.as_tensor(np.array(target)), "index": index}

    @property
    def targets(self) -> torch.Tensor:
        """All targets (read from the small target files only)."""
        parts = [np.asarray(self._array(i, "target")) for i in range(len(self._shards))]
        targets = np.concatenate(parts)
        if self._target_map is not None:
            targets = self._target_map[targets]
        return torch.from_numpy(targets)


__all__ = ["PackedDataset", "pack_dataset"]
