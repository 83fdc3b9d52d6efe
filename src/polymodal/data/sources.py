"""Named data sources: each builds a run's train/val/test splits and describes them for the model.

A source is registered in ``DATASETS`` under the name a recipe gives as ``data.name`` and receives the validated
``DataConfig``; new datasets plug in here without touching the run glue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from polymodal.data.avdigits import AVDigits
from polymodal.data.collate import Collate
from polymodal.data.manifest import ManifestDataset
from polymodal.data.splits import split_indices, subset_indices
from polymodal.data.vocab import SEQUENCE_MODALITIES
from polymodal.errors import ConfigError, DataError
from polymodal.registry import ComponentConfig, Registry

DATASETS = Registry("dataset")


@dataclass
class DataBundle:
    """The splits of a run's data and what the model needs to know about them."""

    train: Dataset
    val: Dataset
    test: Dataset
    task: str
    modalities: list[str]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str] = field(default_factory=dict)
    class_names: list[str] | None = None
    columns: dict[str, str] | None = None

    @property
    def out_dim(self) -> int:
        return len(self.class_names) if self.task == "classification" and self.class_names else 1

    def collate(self) -> Collate:
        return Collate(self.shapes, {m: getattr(torch, d) for m, d in self.dtypes.items()})

    def info(self) -> dict[str, Any]:
        """What ``run.json`` stores so a saved run can rebuild its model without the data."""
        return {
            "task": self.task,
            "modalities": self.modalities,
            "shapes": {m: list(s) for m, s in self.shapes.items()},
            "dtypes": self.dtypes,
            "class_names": self.class_names,
            "columns": self.columns,
        }


def sample_shapes(dataset: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Per-modality shape (per step for sequences) and non-float32 dtypes, read off the first sample."""
    shapes, dtypes = {}, {}
    for m, value in dataset[0]["inputs"].items():
        if value is None:
            continue
        shapes[m] = tuple(value.shape[1:]) if m in SEQUENCE_MODALITIES else tuple(value.shape)
        if value.dtype != torch.float32:
            dtypes[m] = str(value.dtype).removeprefix("torch.")
    return shapes, dtypes


def build_data(data: Any, seed: int, progress: bool = True) -> DataBundle:
    """Builds the splits of ``data.name`` and applies ``data.max_train_samples`` and ``data.modalities``.

    Args:
        data: a validated ``DataConfig``.
        seed: the run seed (validation carving, training subsets).
        progress: whether sources may draw progress bars.
    """
    builder: Callable[..., DataBundle] = DATASETS.get(data.name)[0]
    bundle = builder(data, seed=seed, progress=progress)
    if data.max_train_samples:
        bundle.train = Subset(bundle.train, subset_indices(len(bundle.train), data.max_train_samples, seed))
    for m in bundle.modalities:
        if m not in bundle.shapes:
            raise ConfigError(f"data.modalities: the data has no {m!r} modality (it has: {', '.join(bundle.shapes)})")
    return bundle


@DATASETS.register("avdigits", ComponentConfig)
def build_avdigits(data: Any, seed: int, progress: bool) -> DataBundle:
    """The embedded AV-digits data (``data.root`` may point at another build of the .npz)."""
    kwargs = {"path": data.root, "image": data.image, "audio": data.audio, "text": data.text}
    train, val, test = (AVDigits(split, **kwargs) for split in ("train", "val", "test"))
    if isinstance(data.modalities, dict):
        raise ConfigError("data.modalities: avdigits takes a list of modalities, not a column mapping")
    shapes, dtypes = sample_shapes(test)
    modalities = list(data.modalities or train.modalities)
    return DataBundle(train, val, test, data.task, modalities, shapes, dtypes, list(train.class_names))


def manifest_split(
    path: str | Path, data: Any, class_names: list[str] | None, modalities: Any, progress: bool
) -> ManifestDataset:
    """One CSV manifest decoded with the run's adapter settings."""
    return ManifestDataset(
        path,
        target=data.target,
        modalities=modalities,
        task=data.task,
        class_names=class_names,
        image=data.image,
        audio=data.audio,
        text=data.text,
        features=data.features,
        show_progress=progress,
    )


def check_same_shapes(dataset: ManifestDataset, shapes: dict[str, tuple[int, ...]], reference: Any) -> None:
    """Raises a DataError when a manifest's per-sample shapes differ from the training data's."""
    for m, shape in dataset.shapes.items():
        if m in shapes and tuple(shape) != tuple(shapes[m]):
            raise DataError(
                f"{dataset.path}: column {dataset.columns[m]!r} has {m} of shape {tuple(shape)} per sample but "
                f"{reference} has {tuple(shapes[m])}"
            )


@DATASETS.register("manifest", ComponentConfig)
def build_manifest(data: Any, seed: int, progress: bool) -> DataBundle:
    """CSV manifests of the user's files; validation carved from train (stratified) unless ``data.val`` is given."""
    for key in ("train", "test"):
        if not getattr(data, key):
            raise ConfigError(f"data.{key}: required for manifest data (a CSV path)")
    declared = data.modalities if isinstance(data.modalities, dict) else None
    train = manifest_split(data.train, data, None, declared, progress)
    # The training manifest fixes the shapes (from its first non-empty cell per column), not a sample that may
    # have empty cells.
    shapes = dict(train.shapes)
    dtypes = {m: str(d).removeprefix("torch.") for m, d in train.dtypes.items() if d != torch.float32}
    class_names = list(train.class_names) if data.task == "classification" else None
    columns = dict(train.columns)
    by_column = {c: m for m, c in columns.items()}
    if data.val:
        val = manifest_split(data.val, data, class_names, by_column, progress)
        check_same_shapes(val, shapes, data.train)
    else:
        targets = train.targets.tolist() if data.task == "classification" else None
        try:
            train_idx, val_idx = split_indices(len(train), data.val_fraction, seed, targets)
        except DataError as err:
            raise DataError(f"{data.train}: {err} (add rows or give data.val)") from None
        train, val = Subset(train, train_idx), Subset(train, val_idx)
    test = manifest_split(data.test, data, class_names, by_column, progress)
    check_same_shapes(test, shapes, data.train)
    modalities = list(data.modalities) if isinstance(data.modalities, list) else list(columns)
    return DataBundle(train, val, test, data.task, modalities, shapes, dtypes, class_names, columns)
