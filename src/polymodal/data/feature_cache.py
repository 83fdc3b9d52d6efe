"""Cached features of frozen encoders: computed once per split, reused by every epoch and by later runs.

An encoder whose parameters are all fixed and that stays in eval mode while its model trains (``hf`` or ``from_run``
with ``freeze: true``) maps a sample to the same feature every epoch, unless the sample's inputs are augmented
(``data.augment`` of its kind). Its features of the train and val splits are computed once, in float32, into the user
cache folder (:func:`cache_folder`): ``features/<key>.npy``, an (N, D) array read memory-mapped, and ``<key>.json``
beside it (shape and sha256), each written atomically, the ``.json`` last. The key is a sha256 of what the features
depend on: the encoder's weights, class and settings, the split's decoded inputs of that modality and the adapter
settings that decoded them. Changing any of them computes the features again; a later run with the same encoder and
data reuses them. A file that fails its checks (missing ``.json``, wrong shape, checksum mismatch) is computed again
after one line on stderr.

While the run trains, the split's cached inputs are replaced by rows of those arrays (:class:`FeatureDataset`,
:class:`FeatureCollate`) and the model takes them as its encoders' outputs (its ``precomputed`` inputs, see
:meth:`FeatureCache.precomputed`). The final evaluation (which adds noise to raw inputs) and ``eval``, ``predict``
and ``embed`` of the saved run read raw inputs: the checkpoints hold every weight, as without the cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from polymodal import __version__
from polymodal.data.collate import move_to
from polymodal.data.vocab import adapter_kind, modality_kind
from polymodal.errors import DataError
from polymodal.fileio import atomic_path, atomic_write_text, read_json_object, sha256_file, user_cache_folder
from polymodal.progress import duration, progress, say

FORMAT = "polymodal-features"
VERSION = 1
SPLITS = ("train", "val")  # the splits every epoch reads; test is scored once, from raw inputs (noise included)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class PrecomputedInputs(Protocol):
    """A model that takes cached features (``MultimodalModel``): its ``encoders`` by input, and ``precomputed``, the
    inputs that arrive as their encoder's (B, D) output already."""

    encoders: nn.ModuleDict
    precomputed: set[str]


def cache_folder() -> Path | None:
    """The feature cache's folder (see :func:`polymodal.fileio.user_cache_folder`), None when
    ``POLYMODAL_CACHE=off``."""
    return user_cache_folder("features")


def is_frozen(encoder: nn.Module) -> bool:
    """Whether an encoder gives fixed features while its model trains.

    It has parameters, none of them trains, and in train mode every module below it that holds parameters or
    buffers, and every dropout, stays in eval mode (the encoder's own top level counts only if it holds some itself).
    """
    parameters = list(encoder.parameters())
    if not parameters or any(p.requires_grad for p in parameters):
        return False
    mode = encoder.training
    encoder.train()
    try:
        for module in encoder.modules():
            below = module is not encoder
            holds = any(True for _ in module.parameters(below)) or any(True for _ in module.buffers(below))
            if module.training and (holds or isinstance(module, _DROPOUTS)):
                return False
        return True
    finally:
        encoder.train(mode)


def cacheable_inputs(model: nn.Module, config: Any, shapes: Mapping[str, Any]) -> list[str]:
    """The inputs of the data whose encoder features can be cached (none with ``trainer.feature_cache: off``).

    The model must take precomputed features (``precomputed``, as ``MultimodalModel`` does); an input qualifies when
    its encoder :func:`is_frozen` and ``data.augment`` leaves its kind alone.
    """
    if config.trainer.feature_cache == "off" or not hasattr(model, "precomputed"):
        return []
    augment = config.data.augment
    return [
        m
        for m, encoder in cast(PrecomputedInputs, model).encoders.items()
        if m in shapes and getattr(augment, modality_kind(m), None) is None and is_frozen(encoder)
    ]


def _update(digest: Any, tensor: Tensor) -> None:
    digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's state (names, shapes, dtypes and values of its parameters and buffers)."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        _update(digest, value)
    return digest.hexdigest()


def inputs_digests(dataset: Dataset, modalities: Sequence[str], show: bool = False) -> dict[str, str]:
    """sha256 of each modality's decoded inputs over a split, sample by sample in order (absent ones included)."""
    digests = {m: hashlib.sha256() for m in modalities}
    for index in progress(range(len(cast(Sized, dataset))), desc="hashing inputs", unit="sample", enabled=show):
        inputs = dataset[index]["inputs"]
        for m, digest in digests.items():
            value = inputs.get(m)
            if value is None:
                digest.update(b"absent;")
                continue
            digest.update(f"{tuple(value.shape)}:{value.dtype};".encode())
            _update(digest, value)
    return {m: d.hexdigest() for m, d in digests.items()}


def _problem(path: Path, rows: int, dim: int) -> str | None:
    """What is wrong with a cache file of (rows, dim) features: ``""`` when there is no file, None when it is good."""
    meta = path.with_suffix(".json")
    if not path.exists() and not meta.exists():
        return ""
    if not meta.is_file():
        return "no .json beside it (partly written)"
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        info = read_json_object(meta)
    except (DataError, OSError):
        return f"{meta.name} is unreadable"
    if info.get("format") != FORMAT or info.get("shape") != [rows, dim]:
        return f"{meta.name} describes other features ({info.get('shape')}, expected {[rows, dim]})"
    if sha256_file(path) != info.get("sha256"):
        return "checksum mismatch (truncated or corrupted)"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        return f"unreadable ({' '.join(str(err).split())})"
    if array.shape != (rows, dim) or array.dtype != np.float32:
        return f"holds {array.dtype} {array.shape}, expected float32 {(rows, dim)}"
    return None


class _Only(Dataset):
    """A split's samples with only some of their inputs."""

    def __init__(self, dataset: Dataset, modalities: Sequence[str]) -> None:
        self.dataset, self.modalities = dataset, list(modalities)

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        return {**sample, "inputs": {m: sample["inputs"].get(m) for m in self.modalities}}


def compute_features(
    encoders: Mapping[str, nn.Module],
    dataset: Dataset,
    collate: Callable[[list[Any]], dict[str, Any]],
    paths: Mapping[str, Path],
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    show: bool = False,
) -> None:
    """Writes each encoder's float32 (N, D) features of a split to its ``.npy`` path, then its ``.json``.

    The inputs are collated as training batches are (absent ones as zeros) and encoded in eval mode without
    gradients; the arrays are filled in place (memory-mapped) and renamed into place when complete.
    """
    rows = len(cast(Sized, dataset))
    # Its own generator: a DataLoader iterator would otherwise draw from the global RNG that training continues from.
    loader = DataLoader(
        _Only(dataset, list(paths)),
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator(),
    )
    modes = {m: encoders[m].training for m in paths}
    with ExitStack() as stack:
        arrays = {
            m: np.lib.format.open_memmap(
                stack.enter_context(atomic_path(path)),
                mode="w+",
                dtype=np.float32,
                shape=(rows, cast(int, encoders[m].out_dim)),
            )
            for m, path in paths.items()
        }
        start = 0
        try:
            for m in paths:
                encoders[m].to(device).eval()
            with torch.no_grad():
                for batch in progress(loader, desc=f"caching {', '.join(paths)} features", unit="batch", enabled=show):
                    inputs, lengths = move_to(batch["inputs"], device), move_to(batch["lengths"], device)
                    stop = start + len(batch["index"])
                    for m, array in arrays.items():
                        array[start:stop] = encoders[m](inputs[m], lengths.get(m)).float().cpu().numpy()
                    start = stop
        finally:
            for m, mode in modes.items():
                encoders[m].train(mode)
        for array in arrays.values():
            array.flush()
        arrays.clear()  # closes the maps before the files are renamed
    for m, path in paths.items():
        info = {"format": FORMAT, "version": VERSION, "shape": [rows, encoders[m].out_dim], "sha256": sha256_file(path)}
        atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=2))


class FeatureDataset(Dataset):
    """A split whose cached inputs are replaced by rows of their features (absent inputs stay absent).

    Args:
        dataset: the split.
        files: input -> its ``.npy`` features, one row per sample of the split, in order.
    """

    def __init__(self, dataset: Dataset, files: Mapping[str, Path]) -> None:
        self.dataset, self.files = dataset, dict(files)
        self._open: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each DataLoader worker instead of being pickled (which would copy them).
        return {**self.__dict__, "_open": {}}

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        inputs = dict(sample["inputs"])
        for m, path in self.files.items():
            if inputs.get(m) is not None:
                if m not in self._open:
                    self._open[m] = np.load(path, mmap_mode="r", allow_pickle=False)
                inputs[m] = torch.from_numpy(np.array(self._open[m][index]))
        return {**sample, "inputs": inputs}


class FeatureCollate:
    """A collate function for :class:`FeatureDataset` samples: feature inputs are stacked to (B, D) (zeros where
    absent, with ``present`` False), the others go through ``collate``; inputs keep their order.

    Args:
        collate: the plain collate function.
        dims: input -> its feature width D.
    """

    def __init__(self, collate: Callable[[list[Any]], dict[str, Any]], dims: Mapping[str, int]) -> None:
        self.collate, self.dims = collate, dict(dims)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch = self.collate(
            [{**s, "inputs": {m: v for m, v in s["inputs"].items() if m not in self.dims}} for s in samples]
        )
        inputs, present = {}, {}
        for m in dict.fromkeys(m for s in samples for m in s["inputs"]):
            if m not in self.dims:
                inputs[m], present[m] = batch["inputs"][m], batch["present"][m]
                continue
            values = [s["inputs"].get(m) for s in samples]
            zeros = torch.zeros(self.dims[m])
            inputs[m] = torch.stack([v if v is not None else zeros for v in values])
            present[m] = torch.tensor([v is not None for v in values])
        batch["inputs"], batch["present"] = inputs, present
        return batch


@dataclass
class FeatureCache:
    """The cached features of a run's frozen encoders.

    Attributes:
        files: split -> input -> its ``.npy`` features.
        dims: input -> feature width.
    """

    files: dict[str, dict[str, Path]]
    dims: dict[str, int]

    def dataset(self, split: str, dataset: Dataset) -> FeatureDataset:
        """``dataset`` (the split named ``split``) with its cached inputs replaced by their features."""
        return FeatureDataset(dataset, self.files[split])

    def collate(self, collate: Callable[[list[Any]], dict[str, Any]]) -> FeatureCollate:
        """A collate function for :meth:`dataset` samples around the plain ``collate``."""
        return FeatureCollate(collate, self.dims)

    @contextmanager
    def precomputed(self, model: PrecomputedInputs) -> Iterator[None]:
        """While inside, ``model`` takes the cached inputs as its encoders' outputs."""
        model.precomputed = set(self.dims)
        try:
            yield
        finally:
            model.precomputed = set()


def cache_key(config: Any, modality: str, encoder: nn.Module, weights: str, inputs: str) -> str:
    """sha256 of what one encoder's features of one split depend on (see the module docstring)."""
    specs = config.model.encoders
    key = {
        "format": FORMAT,
        "version": VERSION,
        "polymodal": __version__,
        "encoder": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "spec": specs.get(modality, specs.get(modality_kind(modality))),
        "weights": weights,
        "inputs": inputs,
        "adapter": getattr(config.data, adapter_kind(modality)).model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def prepare_feature_cache(
    config: Any,
    bundle: Any,
    model: nn.Module,
    device: torch.device,
    main: bool = True,
    barrier: Callable[[], None] = lambda: None,
) -> FeatureCache | None:
    """Finds or computes the train and val features of a run's frozen encoders (see :func:`cacheable_inputs`).

    Under ``torchrun`` the main process computes what is missing while the others wait at ``barrier``, then every
    process checks the files. Returns None when nothing qualifies or the cache folder cannot be written (said on
    stderr; the run then encodes every epoch).
    """
    inputs = cacheable_inputs(model, config, bundle.shapes)
    if not inputs:
        return None
    show = config.trainer.progress and main
    folder = cache_folder()
    if folder is None:
        return None
    say(
        f"feature cache: {folder} (frozen encoders of {', '.join(inputs)}; trainer.feature_cache=off turns it off)",
        show,
    )
    encoders = {m: cast(PrecomputedInputs, model).encoders[m] for m in inputs}
    dims = {m: cast(int, e.out_dim) for m, e in encoders.items()}
    weights = {m: weights_digest(e) for m, e in encoders.items()}
    files: dict[str, dict[str, Path]] = {}
    written = True
    for split in SPLITS:
        dataset = getattr(bundle, split)
        digests = inputs_digests(dataset, inputs, show)
        files[split] = {m: folder / f"{cache_key(config, m, encoders[m], weights[m], digests[m])}.npy" for m in inputs}
        if not main or not written:
            continue
        missing = {}
        for m, path in files[split].items():
            problem = _problem(path, len(dataset), dims[m])
            if problem:
                say(f"polymodal: warning: feature cache {path}: {problem}; computing the features again")
            if problem is not None:
                missing[m] = path
        started = time.perf_counter()
        try:
            if missing:
                compute_features(
                    encoders,
                    dataset,
                    bundle.collate(),
                    missing,
                    config.data.eval_batch_size,
                    device,
                    config.data.num_workers,
                    show,
                )
        except OSError as err:
            say(f"polymodal: warning: feature cache {folder}: cannot write ({err}); encoding every epoch instead")
            written = False
            continue
        reused = [m for m in inputs if m not in missing]
        parts = [f"{', '.join(missing)} computed in {duration(time.perf_counter() - started)}"] if missing else []
        parts += [f"{', '.join(reused)} reused"] if reused else []
        say(f"cached features, {split} ({len(dataset)} samples): {'; '.join(parts)}", show)
    barrier()
    if not written:
        return None
    if not main:
        sizes = {split: len(getattr(bundle, split)) for split in SPLITS}
        if any(_problem(p, sizes[s], dims[m]) is not None for s in SPLITS for m, p in files[s].items()):
            return None
    return FeatureCache(files, dims)


__all__ = [
    "FeatureCache",
    "FeatureCollate",
    "FeatureDataset",
    "cache_folder",
    "cacheable_inputs",
    "compute_features",
    "is_frozen",
    "prepare_feature_cache",
]
