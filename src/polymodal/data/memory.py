"""Datasets passed from Python: the user's own map-style torch Datasets as a run's splits, or as data to score.

A sample is ``{"inputs": {modality: Tensor or None}, "target": ..., "index": int}`` (see ``data/collate.py``). The
first samples of every dataset are checked before anything is built, so a malformed sample is one line naming the
sample and the key instead of a stack trace at the first batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from polymodal.data.sources import DataBundle, non_float_dtypes
from polymodal.data.vocab import adapter_kind, check_modality, is_sequence
from polymodal.errors import ConfigError, DataError

# Samples checked per dataset: enough for the usual mistakes (layout, dtype, shape, target), without a whole pass
# over a dataset that decodes its files lazily.
CHECKED_SAMPLES = 32

SAMPLE_FORM = "{'inputs': {modality: tensor or None}, 'target': ..., 'index': int}"

# Dimensions of one input per adapter kind (what the encoders and collate expect).
INPUT_DIMS = {
    "image": ((3,), "(C, H, W)"),
    "audio": ((2, 3), "(1, n_mels, T), or (1, N) for a waveform"),
    "text": ((1,), "(L,) integer tokens"),
    "features": ((2,), "(T, D)"),
}


@dataclass
class Splits:
    """A run's train, validation and test data as map-style torch Datasets (``polymodal.train(..., data=...)``).

    Every item is a polymodal sample ``{"inputs": {modality: tensor or None}, "target": ..., "index": i}``:

    - ``inputs``: one model-ready tensor per modality (``image`` (C, H, W) float, ``audio`` (1, n_mels, T) float,
      ``text`` (L,) int64 tokens, ``features`` (T, D) float; or ``kind:name`` for several inputs of one kind), or
      ``None`` where the sample lacks that modality. A modality has one shape and dtype in every sample (sequences:
      per step), and the training split names every modality.
    - ``target``: a class index ``0 <= t < len(class_names)`` (classification) or a number (regression).
    - ``index``: an integer id of the sample (its position in the split is the usual choice).

    Args:
        train: the training split.
        val: the validation split (checkpoint selection).
        test: the test split (the final report).
        class_names: the name of each class index; ``None`` makes the task regression.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    class_names: Sequence[str] | None = None

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "regression" if self.class_names is None else "classification"

    def bundle(self) -> DataBundle:
        """Checks the first samples of each split and describes the data for the model.

        Raises:
            DataError: a malformed sample, or splits that disagree (one line naming the sample and key).
            ConfigError: bad ``class_names``.
        """
        classes = None
        if self.class_names is not None:
            classes = list(self.class_names)
            if not classes or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
                raise ConfigError("class_names: expected distinct strings, one per class index (None for regression)")
        shapes, dtypes = describe_samples(self.train, "data.train", self.task, classes)
        for name in ("val", "test"):
            check_like(getattr(self, name), f"data.{name}", shapes, dtypes, self.task, classes, "data.train")
        return DataBundle(
            self.train, self.val, self.test, self.task, list(shapes), shapes, non_float_dtypes(dtypes), classes
        )


def describe_samples(
    dataset: Any,
    where: str,
    task: str,
    class_names: list[str] | None,
    labeled: bool = True,
    known: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[dict[str, tuple[int, ...]], dict[str, torch.dtype]]:
    """Checks the first ``CHECKED_SAMPLES`` samples of a dataset and returns each modality's shape (per step for
    sequences) and dtype, in the order the samples name them.

    Args:
        dataset: a map-style dataset of polymodal samples.
        where: its name in error messages (``data.train``).
        task: ``classification`` or ``regression`` (what a target must be).
        class_names: the classes (classification).
        labeled: whether samples must have a target.
        known: shapes known from elsewhere (the training data): a modality missing from every checked sample is then
            allowed.

    Raises:
        DataError: naming the sample and key, e.g. ``data.train[3].inputs.image: shape (1, 32, 32) float32, but
            data.train[0] has (1, 28, 28) float32``.
    """
    try:
        size = len(dataset)
    except TypeError:
        raise DataError(f"{where}: expected a map-style dataset (__len__, __getitem__), got {_kind(dataset)}") from None
    if size == 0:
        raise DataError(f"{where}: empty (every split needs at least one sample)")
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, torch.dtype] = {}
    first: dict[str, int] = {}
    named: list[str] = []
    for i in range(min(size, CHECKED_SAMPLES)):
        sample, at = dataset[i], f"{where}[{i}]"
        keys = ("inputs", "index", "target") if labeled else ("inputs", "index")
        if not isinstance(sample, Mapping) or any(k not in sample for k in keys):
            raise DataError(f"{at}: expected a sample {SAMPLE_FORM}, got {_kind(sample)}")
        if not isinstance(sample["inputs"], Mapping) or not sample["inputs"]:
            raise DataError(
                f"{at}.inputs: expected a mapping of modality -> tensor or None, got {_kind(sample['inputs'])}"
            )
        for m, value in sample["inputs"].items():
            _check_name(m, f"{at}.inputs")
            named += [] if m in named else [m]
            if value is None:
                continue
            shape = _check_input(value, m, f"{at}.inputs.{m}")
            if m not in shapes:
                shapes[m], dtypes[m], first[m] = shape, value.dtype, i
            elif (shape, value.dtype) != (shapes[m], dtypes[m]):
                raise DataError(
                    f"{at}.inputs.{m}: {_describe(shape, value.dtype, m)}, but {where}[{first[m]}] has "
                    f"{_describe(shapes[m], dtypes[m], m)}"
                )
        _check_index(sample["index"], f"{at}.index")
        if labeled:
            _check_target(sample["target"], f"{at}.target", task, class_names)
    unknown = [m for m in named if m not in shapes and m not in (known or {})]
    if unknown:
        checked = min(size, CHECKED_SAMPLES)
        raise DataError(f"{where}: {unknown[0]} is None in each of the first {checked} samples (its shape is unknown)")
    return shapes, dtypes


def check_like(
    dataset: Any,
    where: str,
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, torch.dtype],
    task: str,
    class_names: list[str] | None,
    reference: str,
    labeled: bool = True,
) -> list[str]:
    """Checks that a dataset's samples have the modalities, shapes and dtypes of ``reference`` (the training data).

    Returns:
        The reference's modalities that none of the checked samples has.
    """
    seen, seen_dtypes = describe_samples(dataset, where, task, class_names, labeled, known=shapes)
    for m, shape in seen.items():
        if m not in shapes:
            raise DataError(f"{where}: input {m!r} is not in {reference} (it has: {', '.join(shapes)})")
        expected = dtypes.get(m, torch.float32)
        if (shape, seen_dtypes[m]) != (tuple(shapes[m]), expected):
            raise DataError(
                f"{where}: {m} is {_describe(shape, seen_dtypes[m], m)} per sample, but {reference} has "
                f"{_describe(tuple(shapes[m]), expected, m)}"
            )
    return [m for m in shapes if m not in seen]


def run_samples(dataset: Any, info: Mapping[str, Any], labeled: bool) -> tuple[Dataset, list[str]]:
    """A user's dataset checked against a trained run's inputs (its ``run.json``), for evaluation or prediction.

    Returns:
        The dataset (with a placeholder target per sample when not ``labeled``) and the run's modalities it lacks.
    """
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    dtypes = {m: getattr(torch, d) for m, d in info["dtypes"].items()}
    absent = check_like(dataset, "data", shapes, dtypes, info["task"], info["class_names"], "the run's data", labeled)
    return (dataset if labeled else _WithoutTargets(dataset)), absent


class _WithoutTargets(Dataset):
    """Samples with a placeholder target: collate stacks one, and predictions never read it."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.dataset[i], "target": 0}


def _kind(value: Any) -> str:
    return type(value).__name__


def _describe(shape: tuple[int, ...], dtype: torch.dtype, modality: str) -> str:
    what = f"(T, {', '.join(map(str, shape))})" if is_sequence(modality) else str(shape)
    return f"shape {what} {str(dtype).removeprefix('torch.')}"


def _check_name(name: Any, where: str) -> None:
    try:
        check_modality(str(name), where)
    except ConfigError as err:
        raise DataError(str(err)) from None


def _check_input(value: Any, modality: str, where: str) -> tuple[int, ...]:
    """One input's shape (per step for sequences), after checking its type and number of dimensions."""
    if not isinstance(value, Tensor):
        raise DataError(f"{where}: expected a tensor or None, got {_kind(value)} (torch.as_tensor converts arrays)")
    dims, form = INPUT_DIMS.get(adapter_kind(modality), ((value.dim(),), ""))
    if value.dim() not in dims:
        raise DataError(f"{where}: expected {form}, got shape {tuple(value.shape)}")
    if adapter_kind(modality) == "text" and value.dtype.is_floating_point:
        raise DataError(f"{where}: expected integer tokens, got {str(value.dtype).removeprefix('torch.')}")
    return tuple(value.shape[1:]) if is_sequence(modality) else tuple(value.shape)


def _is_integer(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dim() == 0 and not value.dtype.is_floating_point and value.dtype != torch.bool
    return isinstance(value, int) and not isinstance(value, bool)


def _check_index(value: Any, where: str) -> None:
    if not _is_integer(value):
        raise DataError(f"{where}: expected an integer id of the sample, got {_kind(value)}")


def _check_target(value: Any, where: str, task: str, class_names: list[str] | None) -> None:
    if task == "classification":
        count = len(class_names or [])
        if not _is_integer(value) or not 0 <= int(value) < count:
            shown = value.tolist() if isinstance(value, Tensor) else value
            raise DataError(f"{where}: expected a class index 0-{count - 1} (class_names has {count}), got {shown!r}")
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number or (isinstance(value, Tensor) and value.numel() == 1 and value.dtype != torch.bool)):
        raise DataError(f"{where}: expected a number (regression: class_names is None), got {_kind(value)}")
