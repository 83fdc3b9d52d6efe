"""Reads MNIST in the Keras ``mnist.npz`` layout (the user's copy, see docs/data.md), without pickle."""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path

import numpy as np

from polymodal.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
FULL_SIZES = (60000, 10000)  # training and test images of the full MNIST
# sha256 of the four arrays' bytes in KEYS order: the same for every faithful copy (Keras' download, or an .npz
# rebuilt from the IDX files), whatever the .npz container and its compression. The file checksums are in docs/data.md.
CONTENT_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the arrays' bytes in ``KEYS`` order (C order, as stored)."""
    digest = hashlib.sha256()
    for key in KEYS:
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def read_mnist(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of a Keras-style ``mnist.npz``; any problem is one DataError naming the file.

    A full-size file (60,000 + 10,000 images) whose arrays are not MNIST's gets a warning, not an error: the same
    layout serves other digit sets on purpose (e.g. Fashion-MNIST), but their scores are not the documented ones.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in KEYS}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a Keras-style mnist.npz, see docs/data.md)") from None
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (expected a Keras-style mnist.npz)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable mnist .npz ({' '.join(str(err).split())})") from None
    if (len(arrays["x_train"]), len(arrays["x_test"])) == FULL_SIZES:
        digest = content_sha256(arrays)
        if digest != CONTENT_SHA256:
            message = f"{path}: arrays are not MNIST's (content sha256 {digest[:12]}..., see docs/data.md)"
            warnings.warn(message, stacklevel=2)
    return arrays
