"""Image adapter: arrays or image files to normalised float tensors of shape (channels, size, size)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.errors import DataError
from polymodal.modalities.adapters import ADAPTERS
from polymodal.modalities.features import load_npy
from polymodal.modalities.settings import ImageConfig

# ITU-R BT.601 luma weights for RGB -> gray.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _unit_scale(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.bool_ or arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"{source}: contains NaN or inf values")
        return out
    raise DataError(f"{source}: unsupported pixel dtype {arr.dtype} (use uint8 0-255, uint16 or float 0-1)")


@ADAPTERS.register("image", ImageConfig)
class ImageAdapter:
    """Converts images to normalised tensors of shape (channels, size, size).

    Args:
        cfg: geometry and normalisation.
    """

    # File suffixes it reads (a CSV manifest infers a column of them as this kind).
    extensions: ClassVar[tuple[str, ...]] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

    def __init__(self, cfg: ImageConfig) -> None:
        self.cfg = cfg

    def read(self, item: str | Path) -> Tensor:
        """One image file (a CSV manifest cell, an item to ``embed``)."""
        return self.from_file(item)

    def from_arrays(self, arr: np.ndarray, source: str = "array") -> Tensor:
        """Vectorised :meth:`from_array` over a stack of images of one size.

        Args:
            arr: (N, H, W) or (N, H, W, C) with C in {1, 3, 4}; uint8 0-255, uint16, or float 0-1. Alpha is dropped.
            source: name used in error messages.

        Returns:
            Float32 tensor of shape (N, channels, size, size).
        """
        arr = np.asarray(arr)
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
            raise DataError(f"{source}: expected an image of shape (H, W) or (H, W, C) with C in 1, 3, 4")
        if 0 in arr.shape:
            raise DataError(f"{source}: image is empty (shape {arr.shape[1:]})")
        x = torch.from_numpy(_unit_scale(arr, source)).permute(0, 3, 1, 2)[:, :3]  # (N, C, H, W), alpha dropped
        if self.cfg.channels == 1 and x.shape[1] == 3:
            x = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA_WEIGHTS)).unsqueeze(1)
        elif self.cfg.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.cfg.size, self.cfg.size):
            # Antialiasing avoids moire when shrinking large photos; the triangle filter never overshoots [0, 1].
            x = F.interpolate(
                x, size=(self.cfg.size, self.cfg.size), mode="bilinear", antialias=True, align_corners=False
            )
        mean, std = (torch.tensor(v, dtype=x.dtype).reshape(-1, 1, 1) for v in (self.cfg.mean, self.cfg.std))
        return ((x - mean) / std).contiguous()

    def from_array(self, arr: np.ndarray, source: str = "array") -> Tensor:
        """Converts one image.

        Args:
            arr: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8 0-255, uint16, or float 0-1; any size.
            source: name used in error messages.

        Returns:
            Float32 tensor of shape (channels, size, size).
        """
        arr = np.asarray(arr)
        if arr.ndim not in (2, 3):
            raise DataError(f"{source}: expected an image of shape (H, W) or (H, W, C), got shape {arr.shape}")
        return self.from_arrays(arr[None], source)[0]

    def from_file(self, path: str | Path) -> Tensor:
        """Reads a ``.npy`` array or any image Pillow can open (png, jpg, bmp, ...) and converts it.

        Raises:
            DataError: one line naming ``path`` if the file is missing, unreadable or of an unsupported layout.
        """
        path = Path(path)
        if path.suffix.lower() == ".npy":
            return self.from_array(load_npy(path), source=str(path))
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        from PIL import Image

        try:
            with Image.open(path) as img:
                # Pillow's own conversion handles palettes, 1-bit and alpha; RGBA -> L drops alpha as wanted.
                arr = np.asarray(img.convert("L" if self.cfg.channels == 1 else "RGB"))
        except Exception as err:  # UnidentifiedImageError, truncated files (OSError), decompression bombs
            raise DataError(
                f"{path}: not a readable image ({' '.join(str(err).split()) or type(err).__name__})"
            ) from None
        return self.from_array(arr, source=str(path))
