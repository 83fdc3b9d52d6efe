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


def _with_one(feature: Tensor, present: Tensor) -> Tensor:
    """(B, D) feature, zeroed where absent, with a constant 1 appended: (B, D + 1)."""
    masked = feature * present.unsqueeze(-1).to(feature.dtype)
    return torch.cat([masked, torch.ones_like(masked[:, :1])], dim=-1)


class TensorFusionConfig(ComponentConfig):
    pass


@FUSIONS.register("tensor", TensorFusionConfig)
class TensorFusion(nn.Module):
    """Tensor fusion (TFN, Zadeh et al. 2017, arXiv 1707.07250): outer product of the features with a 1 appended.

    The appended 1 keeps every unimodal feature and every lower-order interaction in the product. Absent modalities
    contribute zeros (their 1 stays). The fused size is the product of ``D_m + 1``, so keep features small.

    Args:
        dims: feature size of each modality, in a fixed order.
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.out_dim = 1
        for d in dims.values():
            self.out_dim *= d + 1

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], head: nn.Module) -> Tensor:
        """features: modality -> (B, D_m); present: modality -> (B,) bool. Returns head output (B, C)."""
        fused = None
        for m in self.modalities:
            z = _with_one(features[m], present[m])
            fused = z if fused is None else (fused.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        return head(fused)


class LowRankFusionConfig(ComponentConfig):
    rank: int = 4
    dim: int = 64


@FUSIONS.register("lowrank", LowRankFusionConfig)
class LowRankFusion(nn.Module):
    """Low-rank multimodal fusion (LMF, Liu et al. 2018, arXiv 1806.00064, eq. 6).

    The tensor-fusion weight is factorised into ``rank`` modality-specific factors:
    ``h = sum_r prod_m (W_m^(r) [z_m; 1]) + b``, an elementwise product over modalities, without building the
    outer product.

    Args:
        dims: feature size of each modality, in a fixed order.
        rank: number of rank-one terms r.
        dim: fused output size.
    """

    def __init__(self, dims: Mapping[str, int], rank: int, dim: int) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, d + 1, dim))) for m, d in dims.items()}
        )
        self.bias = nn.Parameter(torch.zeros(dim))
        self.out_dim = dim

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], head: nn.Module) -> Tensor:
        """features: modality -> (B, D_m); present: modality -> (B,) bool. Returns head output (B, C)."""
        terms = [  # (B, rank, dim) each
            torch.einsum("bd,rdo->bro", _with_one(features[m], present[m]), self.factors[m]) for m in self.modalities
        ]
        product = terms[0]
        for term in terms[1:]:
            product = product * term
        return head(product.sum(1) + self.bias)
