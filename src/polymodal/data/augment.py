"""Training-time augmentation of collated batches, per modality kind, in torch (``data.augment``).

Small data needs it most: a few hundred images or recordings are memorised in a few epochs. Each transform acts on
the adapters' outputs (normalised images, log-mel spectrograms, byte tokens), draws from torch's global generator
(saved in checkpoints, so a resumed run draws the same numbers) and leaves absent samples untouched. Validation,
test and inference batches are never augmented.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.data.augment_settings import AudioAugment, AugmentConfig, ImageAugment, TextAugment
from polymodal.data.vocab import modality_kind


def _uniform(n: int, bound: float, device: torch.device) -> Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * bound


def augment_images(x: Tensor, cfg: ImageAugment) -> Tensor:
    """(B, C, H, W) normalised images -> the same, each under its own random affine map (border: edge value)."""
    n = x.shape[0]
    angle = _uniform(n, math.radians(cfg.rotate), x.device)
    zoom = 1.0 + _uniform(n, cfg.scale, x.device)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, _uniform(n, 2 * cfg.shift, x.device)], dim=1),
            torch.stack([sin, cos, _uniform(n, 2 * cfg.shift, x.device)], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _band_mask(n: int, size: int, fraction: float, device: torch.device) -> Tensor:
    """(n, size) bool: one random band per row, of width uniform in [0, fraction * size]."""
    width = (torch.rand(n, device=device) * fraction * size).long()
    start = (torch.rand(n, device=device) * (size - width + 1)).long()
    steps = torch.arange(size, device=device)[None]
    return (steps >= start[:, None]) & (steps < (start + width)[:, None])


def augment_spectrograms(x: Tensor, cfg: AudioAugment) -> Tensor:
    """(B, 1, n_mels, T) log-mels -> the same, shifted in time, masked and rescaled, per sample."""
    n, _, mels, frames = x.shape
    floor = x.amin(dim=(1, 2, 3), keepdim=True)  # each clip's silence level
    shifts = _uniform(n, cfg.shift * frames, x.device).round().long()
    index = (torch.arange(frames, device=x.device)[None] - shifts[:, None]).clamp(-1, frames)
    inside = (index >= 0) & (index < frames)
    gathered = torch.gather(x, 3, index.clamp(0, frames - 1)[:, None, None, :].expand(-1, 1, mels, -1))
    out = torch.where(inside[:, None, None, :], gathered, floor)
    masked = _band_mask(n, frames, cfg.time_mask, x.device)[:, None, None, :]
    masked = masked | _band_mask(n, mels, cfg.freq_mask, x.device)[:, None, :, None]
    out = torch.where(masked, floor, out)
    gain = _uniform(n, cfg.gain_db * math.log(10) / 10, x.device)  # dB of power -> natural log
    return out + gain[:, None, None, None].to(x.dtype)


def augment_tokens(x: Tensor, lengths: Tensor | None, cfg: TextAugment) -> Tensor:
    """(B, L) byte token ids -> the same with random tokens (padding excluded) replaced by random bytes."""
    from polymodal.modalities.text import ByteTokenizer

    valid = x > ByteTokenizer.pad_id
    if lengths is not None:
        valid &= torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
    swap = valid & (torch.rand(x.shape, device=x.device) < cfg.typo)
    random = torch.randint(2, ByteTokenizer.vocab_size, x.shape, device=x.device, dtype=x.dtype)
    return torch.where(swap, random, x)


class AugmentedCollate:
    """A collate function that augments the collated batch of the modalities ``cfg`` names (training only).

    Args:
        collate: the plain collate function.
        cfg: what to augment.
    """

    def __init__(self, collate: Callable[[list[Any]], dict[str, Any]], cfg: AugmentConfig) -> None:
        self.collate = collate
        self.cfg = cfg

    def __call__(self, samples: list[Any]) -> dict[str, Any]:
        batch = self.collate(samples)
        inputs = batch["inputs"]
        for name, x in list(inputs.items()):
            kind = modality_kind(name)
            if kind == "image" and self.cfg.image is not None and x.dim() == 4:
                inputs[name] = augment_images(x, self.cfg.image)
            elif kind == "audio" and self.cfg.audio is not None and x.dim() == 4:
                inputs[name] = augment_spectrograms(x, self.cfg.audio)
            elif kind == "text" and self.cfg.text is not None and not x.is_floating_point():
                inputs[name] = augment_tokens(x, batch.get("lengths", {}).get(name), self.cfg.text)
        return batch
