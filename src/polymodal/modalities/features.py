"""Features adapter: precomputed numeric feature sequences to float32 tensors of shape (T, D)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from polymodal.errors import DataError
from polymodal.modalities.adapters import ADAPTERS
from polymodal.modalities.settings import FeaturesConfig


def load_npy(path: str | Path) -> np.ndarray:
    """Loads one array from a ``.npy`` file without ever unpickling.

    Args:
        path: the ``.npy`` file.

    Returns:
        The stored array.

    Raises:
        DataError: one line naming ``path`` if the file is missing, not a ``.npy`` array, or holds Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(6)
    # np.load reports any file without the NumPy magic as "pickled data"; tell garbage and real pickles apart.
    if head[:1] == b"\x80":  # pickle protocol 2 and later
        raise DataError(f"{path}: holds pickled Python objects, which are refused; save a numeric array")
    if head != b"\x93NUMPY" and head[:4] != b"PK\x03\x04":
        raise DataError(f"{path}: not a valid .npy file (no NumPy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            # Unpickling runs arbitrary code, so object arrays and pickles are refused outright.
            raise DataError(f"{path}: holds pickled Python objects, which are refused; save a numeric array") from None
        raise DataError(f"{path}: not a valid .npy file ({' '.join(str(err).split())})") from None
    except Exception as err:
        raise DataError(f"{path}: not a valid .npy file ({' '.join(str(err).split()) or type(err).__name__})") from None
    if not isinstance(arr, np.ndarray):  # np.load returns an NpzFile for .npz archives
        arr.close()
        raise DataError(f"{path}: expected a single .npy array, got an .npz archive")
    return arr


@ADAPTERS.register("features", FeaturesConfig)
class FeaturesAdapter:
    """Validates feature arrays and converts them to float32 tensors of shape (T, D).

    Args:
        cfg: expected dimension and length limit.
    """

    # File suffixes it reads (a CSV manifest infers a column of them as this kind).
    extensions: ClassVar[tuple[str, ...]] = (".npy",)

    def __init__(self, cfg: FeaturesConfig) -> None:
        self.cfg = cfg

    def read(self, item: str | Path) -> Tensor:
        """One ``.npy`` feature array (a CSV manifest cell, an item to ``embed``)."""
        return self.from_file(item)

    def from_array(self, arr: np.ndarray, source: str = "array") -> Tensor:
        """Converts a (D,) or (T, D) numeric array; a (D,) array becomes one step.

        Args:
            arr: numeric array of shape (D,) or (T, D).
            source: name used in error messages (a path, or ``"array"``).

        Returns:
            Float32 tensor of shape (min(T, max_length), D).

        Raises:
            DataError: ``"{source}: ..."`` for a wrong rank or dimension, a non-numeric dtype, an empty array, or
                NaN/inf values.
        """
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{source}: expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise DataError(f"{source}: expected shape (D,) or (T, D), got shape {arr.shape}")
        if arr.size == 0:
            raise DataError(f"{source}: is empty (shape {arr.shape})")
        if self.cfg.dim is not None and arr.shape[1] != self.cfg.dim:
            raise DataError(f"{source}: expected feature dimension {self.cfg.dim}, got {arr.shape[1]}")
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise DataError(f"{source}: contains NaN or inf values")
        if self.cfg.max_length is not None:
            arr = arr[: self.cfg.max_length]
        return torch.from_numpy(np.ascontiguousarray(arr))

    def from_file(self, path: str | Path) -> Tensor:
        """Loads a ``.npy`` file (never unpickling) and converts it as :meth:`from_array` does."""
        return self.from_array(load_npy(path), source=str(path))
