"""Reads MNIST in the Keras ``mnist.npz`` layout (the copy in ../shared/data/mnist), without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from polymodal.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_mnist(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of a Keras-style ``mnist.npz``; any problem is one DataError naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in KEYS}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a Keras-style mnist.npz)") from None
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (expected a Keras-style mnist.npz)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable mnist .npz ({' '.join(str(err).split())})") from None
