"""Unimodal encoders: each maps one modality's batch to a (B, D) feature; ``out_dim`` tells D."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from polymodal.modalities.text import ByteTokenizer
from polymodal.registry import ComponentConfig, Registry

ENCODERS = Registry("encoder")


def _pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Max pooling of an NCHW CPU tensor computed in channels-last layout; the backward is PyTorch's own NCHW kernel
    on the same indices, so values and gradients are bit-identical to ``F.max_pool2d`` on the NCHW input."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, pool: nn.MaxPool2d) -> Tensor:
        y, indices = F.max_pool2d(
            x.contiguous(memory_format=torch.channels_last),
            pool.kernel_size,
            pool.stride,
            pool.padding,
            pool.dilation,
            pool.ceil_mode,
            return_indices=True,
        )
        ctx.save_for_backward(x, indices.contiguous())
        ctx.pool = pool
        return y.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        x, indices = ctx.saved_tensors
        pool = ctx.pool
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(),
            x,
            _pair(pool.kernel_size),
            _pair(pool.stride),
            _pair(pool.padding),
            _pair(pool.dilation),
            pool.ceil_mode,
            indices,
        )
        return grad_x, None


def _max_of_2x2_windows(x: Tensor) -> Tensor:
    """Max pooling with 2x2 windows and stride 2 as the maximum of the four strided views of ``x``: no indices and no
    layout copy. ``torch.maximum`` propagates NaN like the pooling kernel, so the result equals ``F.max_pool2d(x, 2)``
    value for value (only a window whose maximum is a tie of 0.0 and -0.0 may give the other zero)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that pools contiguous CPU tensors in channels-last layout, where PyTorch's CPU forward kernel
    is several times faster than on NCHW input. Same values and gradients; the output is NCHW like the input.

    Without autograd (evaluation), 2x2 windows of stride 2 are the maximum of four strided views, about twice as
    fast again as the channels-last kernel with its layout copies."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous() or self.return_indices:
            return super().forward(x)
        if not (torch.is_grad_enabled() and x.requires_grad):
            if self._is_2x2() and x.is_floating_point() and min(x.shape[-2:]) >= 2:
                return _max_of_2x2_windows(x)
            return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return _ChannelsLastMaxPool.apply(x, self)

    def _is_2x2(self) -> bool:
        return (
            _pair(self.kernel_size) == (2, 2)
            and _pair(self.stride) == (2, 2)
            and _pair(self.padding) == (0, 0)
            and _pair(self.dilation) == (1, 1)
            and not self.ceil_mode
        )


class LeNetConfig(ComponentConfig):
    out_dim: int = 128
    channels: tuple[int, int] = (16, 32)
    dropout: float = 0.1


@ENCODERS.register("lenet", LeNetConfig)
class LeNetEncoder(nn.Module):
    """LeNet-style CNN for images (MultiBench's AV-MNIST image encoder family).

    Args:
        input_shape: (C, H, W) of one image.
        out_dim: feature size D.
        channels: widths of the two conv blocks.
        dropout: dropout before the output projection.
    """

    def __init__(
        self, input_shape: tuple[int, ...], out_dim: int, channels: tuple[int, int], dropout: float, **_: object
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], c1, 5, padding=2),
            nn.BatchNorm2d(c1),
            MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.BatchNorm2d(c2),
            MaxPool2d(2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 16, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, C, H, W) -> (B, D)."""
        return self.proj(self.features(x))


class SpectrogramCNNConfig(ComponentConfig):
    out_dim: int = 128
    channels: tuple[int, int, int] = (16, 32, 64)
    dropout: float = 0.1
    input_pool: int = Field(1, ge=1)


@ENCODERS.register("spec_cnn", SpectrogramCNNConfig)
class SpectrogramCNNEncoder(nn.Module):
    """Small CNN over a log-mel spectrogram, with input batch-norm so raw log-mel values need no dataset statistics.

    Args:
        input_shape: (1, n_mels, T) of one spectrogram.
        out_dim: feature size D.
        channels: widths of the three conv blocks.
        dropout: dropout before the output projection.
        input_pool: average-pooling factor applied to the input first; large spectrograms (AV-MNIST's 112 x 112)
            cost several times less on CPU at 2.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        out_dim: int,
        channels: tuple[int, int, int],
        dropout: float,
        input_pool: int,
        **_: object,
    ) -> None:
        super().__init__()
        # Parameter-free, so it leaves the state-dict keys of existing checkpoints unchanged.
        self.input_pool = nn.AvgPool2d(input_pool) if input_pool > 1 else nn.Identity()
        layers: list[nn.Module] = [nn.BatchNorm2d(input_shape[0])]
        in_ch = input_shape[0]
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.BatchNorm2d(ch), MaxPool2d(2), nn.ReLU()]
            in_ch = ch
        layers.append(nn.AdaptiveAvgPool2d((2, 2)))
        self.features = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_ch * 4, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, 1, n_mels, T) -> (B, D)."""
        return self.proj(self.features(self.input_pool(x)))


class TransformerConfig(ComponentConfig):
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    max_length: int = 512


@ENCODERS.register("transformer", TransformerConfig)
class TransformerEncoder(nn.Module):
    """Small pre-norm transformer over tokens (text) or feature vectors (features), mean-pooled over valid steps.

    Args:
        input_shape: () for token ids (byte vocabulary) or (D_in,) for feature sequences.
        dim: model width, also the output size.
        depth: number of layers.
        heads: attention heads.
        mlp_ratio: feed-forward width over ``dim``.
        dropout: dropout inside the layers.
        max_length: longest sequence (size of the learned position table).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
        max_length: int,
        **_: object,
    ) -> None:
        super().__init__()
        self.tokens = len(input_shape) == 0
        self.embed = nn.Embedding(ByteTokenizer.vocab_size, dim) if self.tokens else nn.Linear(input_shape[-1], dim)
        self.position = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.max_length = max_length
        self.out_dim = dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, L) token ids or (B, L, D_in) features, with lengths (B,) -> (B, dim)."""
        x = x[:, : self.max_length]
        steps = x.shape[1]
        if lengths is None:
            lengths = torch.full((x.shape[0],), steps, device=x.device)
        # Clamp to 1 so a sample whose modality is absent (length 0) still attends somewhere and stays finite.
        valid = torch.arange(steps, device=x.device)[None, :] < lengths.clamp(1, steps)[:, None]
        h = self.embed(x) + self.position[:steps]
        h = self.norm(self.layers(h, src_key_padding_mask=~valid))
        weights = valid.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(1) / weights.sum(1)
