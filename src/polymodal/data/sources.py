"""Named data sources: each builds a run's train/val/test splits and describes them for the model.

A source is registered in ``DATASETS`` under the name a recipe gives as ``data.name`` and receives the validated
``DataConfig``; new datasets plug in here without touching the run glue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch.utils.data import Dataset, Subset

from polymodal.data.avdigits import AVDigits
from polymodal.data.avmnist import AVMNIST, embedded_avmnist_splits
from polymodal.data.collate import Collate
from polymodal.data.config import DataConfig
from polymodal.data.decode_cache import cache_folder
from polymodal.data.digit_captions import Captioned, digit_caption_splits
from polymodal.data.fitting import fit_manifest_settings
from polymodal.data.manifest import ManifestDataset
from polymodal.data.multitask_digits import TASKS, multitask_digit_splits
from polymodal.data.packed import PackedDataset, pack_dataset
from polymodal.data.selfmi_digits import SelfMIDigits
from polymodal.data.sentiment import (
    SequenceDataset,
    load_feature_file,
    load_mosi_transcripts,
    load_mosi_word_aligned,
    video_folds,
)
from polymodal.data.spec import DataSpec, TaskSpec
from polymodal.data.splits import part_indices, split_indices, subset_indices
from polymodal.data.vocab import is_sequence
from polymodal.errors import ConfigError, DataError
from polymodal.modalities import ADAPTERS
from polymodal.registry import ComponentConfig, Registry

DATASETS = Registry("dataset")


class DatasetOptions(ComponentConfig):
    """A dataset's entry in ``DATASETS``: ``reads`` names the settings of ``data`` that only some datasets use and
    this one does (``root``, ``fold``, ...). A setting that no dataset lists is read by all; one that the chosen
    dataset does not list is refused when the config is validated, instead of being ignored. A dataset registered
    with another options class (a user's) is not checked."""

    reads: ClassVar[frozenset[str]] = frozenset()


def reads(*keys: str) -> type[DatasetOptions]:
    """The ``DATASETS`` entry of a dataset that reads the dataset-only settings ``keys`` of ``data``."""
    return type("Reads", (DatasetOptions,), {"reads": frozenset(keys)})


def dataset_only_settings() -> dict[str, list[str]]:
    """Each dataset-only setting of ``data`` -> the datasets that read it."""
    readers: dict[str, list[str]] = {}
    for name in DATASETS.names():
        for key in getattr(DATASETS.get(name)[1], "reads", ()):
            readers.setdefault(key, []).append(name)
    return readers


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
    # How inputs are converted, where settings were fitted to the training files (see polymodal.data.fitting).
    preprocessing: dict[str, Any] | None = None
    # The task table of data whose samples each belong to one of several tasks (see DataSpec).
    tasks: tuple[TaskSpec, ...] = ()

    @property
    def spec(self) -> DataSpec:
        """The typed description the strategy receives."""
        classes = tuple(self.class_names) if self.class_names else None
        return DataSpec(self.task, tuple(self.modalities), classes, self.tasks)

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
            **({"preprocessing": self.preprocessing} if self.preprocessing else {}),
            **self.spec.info(),
        }


def sample_shapes(dataset: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Per-modality shape (per step for sequences) and non-float32 dtypes, read off the first sample."""
    shapes, dtypes = {}, {}
    for m, value in dataset[0]["inputs"].items():
        if value is None:
            continue
        shapes[m] = tuple(value.shape[1:]) if is_sequence(m) else tuple(value.shape)
        if value.dtype != torch.float32:
            dtypes[m] = str(value.dtype).removeprefix("torch.")
    return shapes, dtypes


def build_data(data: DataConfig, seed: int, progress: bool = True) -> DataBundle:
    """Builds the splits of ``data.name``; applies ``data.max_train_samples``, ``max_eval_samples`` and ``modalities``.

    Args:
        data: a validated ``DataConfig``.
        seed: the run seed (validation carving, training subsets).
        progress: whether sources may draw progress bars.
    """
    builder: Callable[..., DataBundle] = DATASETS.get(data.name)[0]
    bundle = builder(data, seed=seed, progress=progress)
    if data.captions:
        _add_captions(bundle, data, seed)
    if data.train_part:
        k, n = data.train_part
        bundle.train = Subset(bundle.train, part_indices(len(cast(Sized, bundle.train)), k, n))
    if data.max_train_samples:
        bundle.train = Subset(
            bundle.train, subset_indices(len(cast(Sized, bundle.train)), data.max_train_samples, seed)
        )
    bundle.val, bundle.test = _eval_subset(bundle.val, data), _eval_subset(bundle.test, data)
    for m in bundle.modalities:
        if m not in bundle.shapes:
            raise ConfigError(f"data.modalities: the data has no {m!r} modality (it has: {', '.join(bundle.shapes)})")
    return bundle


def build_split(data: DataConfig, seed: int, split: str, info: Mapping[str, Any], progress: bool = True) -> Dataset:
    """The ``val`` or ``test`` split of a trained run's data, as the run scored it, decoding only what it needs.

    CSV manifests: that split's manifest alone (a validation split carved from train: the training manifest), with
    the class names and columns of the run's ``run.json`` (``info``). Other sources read stored arrays and build
    every split as :func:`build_data` does.
    """
    if data.name != "manifest" or data.captions:
        return getattr(build_data(data, seed, progress), split)
    class_names = info["class_names"]
    by_column = {c: m for m, c in info["columns"].items()}
    if split == "val" and not data.val:
        train = manifest_split(_required(data, "train", "a CSV path"), data, class_names, by_column, progress)
        dataset: Dataset = carve_validation(train, data, seed, "add rows or give data.val")[1]
    else:
        dataset = manifest_split(getattr(data, split), data, class_names, by_column, progress)
        check_same_shapes(dataset, {m: tuple(s) for m, s in info["shapes"].items()}, data.train)
    return _eval_subset(dataset, data)


def _eval_subset(dataset: Dataset, data: DataConfig) -> Dataset:
    """``data.max_eval_samples`` of a validation or test split, drawn with a fixed seed: every run of a comparison is
    scored on the same samples."""
    if not data.max_eval_samples:
        return dataset
    return Subset(dataset, subset_indices(len(cast(Sized, dataset)), data.max_eval_samples, 0))


def fit_data_settings(data: DataConfig) -> dict[str, Any]:
    """Fits the adapter settings that ``data`` leaves unset to its training files, in place (CSV manifests; other
    sources have fixed formats). Returns what was chosen and why (``run.json``'s ``preprocessing``)."""
    return fit_manifest_settings(data) if data.name == "manifest" else {}


def _add_captions(bundle: DataBundle, data: DataConfig, seed: int) -> None:
    """Adds a generated caption of each sample's digit as the text modality of every split (``data.captions``)."""
    if bundle.task != "classification" or bundle.class_names != [str(d) for d in range(10)]:
        raise ConfigError(f"data.captions: only for digit classification data (classes 0-9), not {data.name}")
    if "text" in bundle.shapes:
        raise ConfigError(f"data.captions: {data.name} data already has a text modality")
    bundle.train, bundle.val, bundle.test = (
        Captioned(split, seed * 3 + k, data.text) for k, split in enumerate((bundle.train, bundle.val, bundle.test))
    )
    shapes, dtypes = sample_shapes(bundle.test)
    bundle.shapes["text"], bundle.dtypes["text"] = shapes["text"], dtypes["text"]
    if not data.modalities:
        bundle.modalities.append("text")


def fixed_splits(
    data: DataConfig, train: Dataset, val: Dataset, test: Dataset, task: str | None = None, reference: Any = None
) -> DataBundle:
    """The bundle of a source with fixed splits; ``data.modalities`` may pick a subset of its modalities.

    Args:
        data: the validated ``DataConfig``.
        train, val, test: the splits.
        task: the task the source implies (None: ``data.task``).
        reference: the dataset that tells ``modalities`` and, for classification, ``class_names`` (default:
            ``train``).
    """
    task = task or data.task
    reference = train if reference is None else reference
    shapes, dtypes = sample_shapes(test)
    modalities = list(data.modalities or reference.modalities)
    class_names = list(reference.class_names) if task == "classification" else None
    return DataBundle(train, val, test, task, modalities, shapes, dtypes, class_names)


def _list_of_modalities(data: DataConfig) -> None:
    if isinstance(data.modalities, dict):
        raise ConfigError(f"data.modalities: {data.name} takes a list of modalities, not a column mapping")


def _required(data: DataConfig, key: str, what: str) -> str:
    """The path setting ``data.<key>`` that this source cannot do without."""
    value: str | None = getattr(data, key)
    if not value:
        raise ConfigError(f"data.{key}: required for {data.name} data ({what})")
    return value


@DATASETS.register("avdigits", reads("root"))
def build_avdigits(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """The embedded AV-digits data (``data.root`` may point at another build of the .npz)."""
    _list_of_modalities(data)
    return fixed_splits(data, _avdigits(data, "train"), _avdigits(data, "val"), _avdigits(data, "test"))


def _avdigits(data: DataConfig, split: str) -> AVDigits:
    """One split of the AV-digits data with ``data``'s adapter settings."""
    return AVDigits(split, path=data.root, image=data.image, audio=data.audio, text=data.text)


@DATASETS.register("avmnist", reads("root"))
def build_avmnist_data(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """AV-MNIST arrays built by ``polymodal data build avmnist`` in the folder ``data.root``; without it, a small
    AV-MNIST made the same way from packaged data (avdigits images, FSDD clips)."""
    _list_of_modalities(data)
    if not data.root:
        return fixed_splits(data, *embedded_avmnist_splits())
    return fixed_splits(data, AVMNIST("train", data.root), AVMNIST("val", data.root), AVMNIST("test", data.root))


def adapter_settings(data: DataConfig) -> dict[str, ComponentConfig]:
    """The settings in ``data`` of each registered adapter kind (``data.image``, ``data.audio``, ...)."""
    return {kind: getattr(data, kind) for kind in ADAPTERS.names()}


def manifest_split(
    path: str | Path, data: DataConfig, class_names: list[str] | None, modalities: Any, progress: bool, **options: Any
) -> ManifestDataset:
    """One CSV manifest decoded with the run's adapter settings, through the decode cache (see
    :mod:`polymodal.data.decode_cache`); ``options`` go to :class:`ManifestDataset` (``shapes``, ``labeled``: a
    manifest for a trained run)."""
    return ManifestDataset(
        path,
        cache=cache_folder(),
        target=data.target,
        modalities=modalities,
        task=data.task,
        class_names=class_names,
        settings=adapter_settings(data),
        show_progress=progress,
        **options,
    )


def check_same_shapes(dataset: ManifestDataset, shapes: dict[str, tuple[int, ...]], reference: Any) -> None:
    """Raises a DataError when a manifest's per-sample shapes differ from the training data's."""
    for m, shape in dataset.shapes.items():
        if m in shapes and tuple(shape) != tuple(shapes[m]):
            raise DataError(
                f"{dataset.path}: column {dataset.columns[m]!r} has {m} of shape {tuple(shape)} per sample but "
                f"{reference} has {tuple(shapes[m])}"
            )


@DATASETS.register("digit-captions", reads("root"))
def build_digit_captions(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """MNIST images with generated multilingual captions (MoMo): the packaged avdigits images, or ``data.root``, the
    user's Keras-style ``mnist.npz``."""
    _list_of_modalities(data)
    return fixed_splits(data, *digit_caption_splits(data.root, seed, data.image, data.text))


def carve_validation(train: Any, data: DataConfig, seed: int, remedy: str) -> tuple[Dataset, Dataset]:
    """Splits ``data.val_fraction`` of ``train`` off as validation (stratified for classification).

    Args:
        train: the training dataset (with ``targets``).
        data: the validated ``DataConfig``.
        seed: the run seed.
        remedy: what the user can do when the split is impossible, for the error message.
    """
    targets = train.targets.tolist() if data.task == "classification" else None
    try:
        train_idx, val_idx = split_indices(len(train), data.val_fraction, seed, targets)
    except DataError as err:
        raise DataError(f"{data.train}: {err} ({remedy})") from None
    return Subset(train, train_idx), Subset(train, val_idx)


def non_float_dtypes(dtypes: dict[str, torch.dtype]) -> dict[str, str]:
    """The modalities whose tensors are not float32, with their dtype names (what ``run.json`` stores)."""
    return {m: str(d).removeprefix("torch.") for m, d in dtypes.items() if d != torch.float32}


@DATASETS.register("manifest", reads("train", "val", "test", "target", "val_fraction"))
def build_manifest(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """CSV manifests of the user's files; validation carved from train (stratified) unless ``data.val`` is given."""
    train_path, test_path = (_required(data, key, "a CSV path") for key in ("train", "test"))
    declared = data.modalities if isinstance(data.modalities, dict) else None
    train = manifest_split(train_path, data, None, declared, progress)
    # The training manifest fixes the shapes (from its first non-empty cell per column), not a sample that may
    # have empty cells.
    shapes = dict(train.shapes)
    dtypes = non_float_dtypes(train.dtypes)
    class_names = list(train.class_names) if data.task == "classification" else None
    columns = dict(train.columns)
    by_column = {c: m for m, c in columns.items()}
    training: Dataset = train
    val: Dataset
    if data.val:
        val = manifest_split(data.val, data, class_names, by_column, progress)
        check_same_shapes(val, shapes, data.train)
    else:
        training, val = carve_validation(train, data, seed, "add rows or give data.val")
    test = manifest_split(test_path, data, class_names, by_column, progress)
    check_same_shapes(test, shapes, data.train)
    modalities = list(data.modalities) if isinstance(data.modalities, list) else list(columns)
    return DataBundle(training, val, test, data.task, modalities, shapes, dtypes, class_names, columns)


def sentiment_bundle(data: DataConfig, train: Dataset, val: Dataset, test: SequenceDataset) -> DataBundle:
    """A regression bundle over sentiment streams (``data.modalities`` may pick a subset, e.g. ``[text]``)."""
    if data.task != "regression":
        raise ConfigError(f"data.task: {data.name} holds sentiment scores; set data.task: regression")
    _list_of_modalities(data)
    return fixed_splits(data, train, val, test, "regression", reference=test)


def _feature_file(data: DataConfig, fmt: str) -> DataBundle:
    path = _required(data, "root", "the .pkl file or its .polymodal.npz cache")
    splits = load_feature_file(path, fmt, data.trust_pickle, data.text)
    return sentiment_bundle(data, splits["train"], splits["valid"], splits["test"])


@DATASETS.register("mmsa", reads("root", "trust_pickle"))
def build_mmsa(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """An MMSA feature pickle (``data.trust_pickle`` to convert it once) or its safe ``.polymodal.npz`` cache."""
    return _feature_file(data, "mmsa")


@DATASETS.register("mult", reads("root", "trust_pickle"))
def build_mult(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """A MulT feature pickle (``data.trust_pickle`` to convert it once) or its safe ``.polymodal.npz`` cache."""
    return _feature_file(data, "mult")


@DATASETS.register("mosi", reads("root", "folds", "fold"))
def build_mosi(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """CMU-MOSI word-aligned features of the standard valid split, in video-disjoint folds (``data.fold``)."""
    root = _required(data, "root", "the mosi folder or its word-aligned npz")
    dataset, videos = load_mosi_word_aligned(root, data.text)
    train, val, test = video_folds(videos, data.folds, data.fold)
    return sentiment_bundle(data, dataset.subset(train), dataset.subset(val), dataset.subset(test))


@DATASETS.register("mosi-text", reads("root"))
def build_mosi_text(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """CMU-MOSI transcripts on the official train/valid/test split (text only)."""
    splits = load_mosi_transcripts(_required(data, "root", "the mosi folder or labels_splits.csv"), data.text)
    return sentiment_bundle(data, splits["train"], splits["valid"], splits["test"])


@DATASETS.register("selfmi-digits", reads("root"))
def build_selfmi_digits(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """AV-digits re-paired so each modality carries its own digit; the target is their weighted sum."""
    if data.task != "regression":
        raise ConfigError("data.task: selfmi-digits is a regression task; set data.task: regression")
    _list_of_modalities(data)
    train, val, test = (SelfMIDigits(_avdigits(data, s), seed=i) for i, s in enumerate(("train", "val", "test")))
    return fixed_splits(data, train, val, test, "regression")


@DATASETS.register("multitask-digits", reads("root", "tasks", "low_data_examples"))
def build_multitask_digits(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """MultiModel's five digit tasks (image, audio and text in; classes or text out) from the packaged avdigits data,
    or from ``data.root`` holding the user's ``mnist/mnist.npz`` and ``fsdd/recordings/``."""
    if data.modalities is not None:
        raise ConfigError("data.modalities: multitask-digits fixes each task's modality; leave it unset")
    if data.task != "classification":
        raise ConfigError("data.task: multitask-digits mixes class and text outputs; keep data.task: classification")
    train, val, test = multitask_digit_splits(
        data.root, data.image, data.audio, data.text, data.tasks, data.low_data_examples
    )
    image = (data.image.channels, data.image.size, data.image.size)
    shapes = {"image": image, "audio": (1, data.audio.n_mels, data.audio.max_frames), "text": ()}
    modalities = list(train.modalities)
    classes = list(train.class_names)
    return DataBundle(train, val, test, data.task, modalities, shapes, {"text": "int64"}, classes, tasks=TASKS)


def pack_manifest(
    path: str | Path, data: DataConfig, out: str | Path, shard_size: int, progress: bool
) -> dict[str, Any]:
    """Decodes a CSV manifest once with ``data``'s adapter settings and writes it as a packed dataset in ``out``.

    Returns the pack's ``index.json`` contents.
    """
    declared = data.modalities if isinstance(data.modalities, dict) else None
    dataset = manifest_split(path, data, None, declared, progress)
    settings = {k: c.model_dump(mode="json") for k, c in adapter_settings(data).items()}
    return pack_dataset(dataset, Path(out), shard_size, {"target": data.target, **settings}, progress)


@DATASETS.register("packed", reads("train", "val", "test", "val_fraction"))
def build_packed(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """Folders written by ``polymodal data pack``, read lazily; validation carved from train unless ``data.val``."""
    train_path, test_path = (_required(data, key, "a folder from `polymodal data pack`") for key in ("train", "test"))
    train = PackedDataset(train_path)
    class_names = list(train.class_names) if train.task == "classification" else None
    if train.task != data.task:
        raise ConfigError(f"data.task: {data.task} but {data.train} was packed for {train.task}")
    splits = {"test": PackedDataset(test_path, class_names)}
    if data.val:
        splits["val"] = PackedDataset(data.val, class_names)
    for name, split in splits.items():
        if split.shapes != train.shapes or split.columns != train.columns:
            raise DataError(f"{getattr(data, name)}: packed with other columns or shapes than {data.train}")
    training: Dataset = train
    if data.val:
        val: Dataset = splits["val"]
    else:
        training, val = carve_validation(train, data, seed, "pack more rows or give data.val")
    shapes = dict(splits["test"].shapes)
    dtypes = non_float_dtypes(splits["test"].dtypes)
    columns = dict(splits["test"].columns)
    modalities = list(data.modalities) if isinstance(data.modalities, list) else list(columns)
    return DataBundle(training, val, splits["test"], data.task, modalities, shapes, dtypes, class_names, columns)


@DATASETS.register("memory", DatasetOptions)
def build_memory(data: DataConfig, seed: int, progress: bool) -> DataBundle:
    """Splits passed from Python (``polymodal.train(..., data=Splits(...))``); they cannot be read again by name."""
    raise ConfigError(
        "data.name: memory: datasets passed from Python (polymodal.train(..., data=Splits(...))) are not saved with "
        "a run; score such a run on data passed again (Run.evaluate(data=...))"
    )
