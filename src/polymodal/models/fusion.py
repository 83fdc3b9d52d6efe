"""Fusions: combine per-modality features (with presence masks) into one output through a head."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from polymodal.registry import ComponentConfig, Registry

FUSIONS = Registry("fusion")


class ConcatFusionConfig(ComponentConfig):
    pass


@FUSIONS.register("concat", ConcatFusionConfig)
class ConcatFusion(nn.Module):
    """Early fusion: concatenate the features of all modalities (zeros where absent) and apply the head once.

    Args:
        dims: feature size of each modality, in a fixed order.
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.out_dim = sum(dims.values())

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], head: nn.Module) -> Tensor:
        """features: modality -> (B, D_m); present: modality -> (B,) bool. Returns head output (B, C)."""
        parts = [features[m] * present[m].unsqueeze(-1).to(features[m].dtype) for m in self.modalities]
        return head(torch.cat(parts, dim=-1))


class LateFusionConfig(ComponentConfig):
    pass


@FUSIONS.register("late", LateFusionConfig)
class LateFusion(nn.Module):
    """Late fusion: one shared head applied to each modality's feature; outputs averaged over present modalities.

    Every encoder must have the same output size, since the head is shared.

    Args:
        dims: feature size of each modality (all equal).
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        sizes = set(dims.values())
        if len(sizes) != 1:
            raise ValueError(f"late fusion shares one head, so encoder output sizes must match, got {dict(dims)}")
        self.modalities = list(dims)
        self.out_dim = sizes.pop()

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], head: nn.Module) -> Tensor:
        """features: modality -> (B, D); present: modality -> (B,) bool. Returns the masked mean of head outputs."""
        outputs = torch.stack([head(features[m]) for m in self.modalities], dim=1)  # (B, M, C)
        mask = torch.stack([present[m] for m in self.modalities], dim=1).to(outputs.dtype).unsqueeze(-1)
        return (outputs * mask).sum(1) / mask.sum(1).clamp(min=1.0)
