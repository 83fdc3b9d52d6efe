"""Sequence blocks of MultiModel's body (arXiv 1706.05137, section 2.1): separable convolutions and attention.

Both act on (B, T, D) token sequences, keep the shape and add a residual, so an encoder or decoder is a list of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timing_signal(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Sinusoidal position signal (T, D) of "Attention Is All You Need" (arXiv 1706.03762, section 3.5)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    signal = torch.zeros(length, dim, device=device)
    signal[:, 0::2] = torch.sin(position * rates)
    signal[:, 1::2] = torch.cos(position * rates)[:, : dim // 2]
    return signal


class SeparableConvBlock(nn.Module):
    """Residual block of two ConvSteps ``LayerNorm(SepConv(ReLU(x)))`` (MultiModel eq. 1-2).

    A depthwise convolution over time (per channel) followed by a pointwise mixing of channels. With ``causal`` the
    sequence is padded on the left only, so position t never sees t+1 (the decoder's autoregressive property).

    Args:
        dim: token width D.
        kernel_size: temporal kernel size.
        dilation: dilation of the second step (the paper's blocks grow their receptive field with dilation).
        causal: left-padding only.
        dropout: dropout on the block's output before the residual.
    """

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, causal: bool = False, dropout: float = 0.0):
        super().__init__()
        self.kernel_size, self.causal = kernel_size, causal
        self.dilations = (1, dilation)
        self.depthwise = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size, dilation=d, groups=dim, bias=False) for d in self.dilations
        )
        self.pointwise = nn.ModuleList(nn.Linear(dim, dim) for _ in self.dilations)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in self.dilations)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: x (B, T, D); mask (B, T), True for real tokens (padding is zeroed before each convolution)."""
        h = x
        steps = zip(self.depthwise, self.pointwise, self.norms, self.dilations, strict=True)
        for depthwise, pointwise, norm, dilation in steps:
            if mask is not None:
                h = h * mask.unsqueeze(-1)
            span = (self.kernel_size - 1) * dilation
            padding = (span, 0) if self.causal else (span // 2, span - span // 2)
            h = F.pad(F.relu(h).transpose(1, 2), padding)  # (B, D, T + span)
            h = norm(pointwise(depthwise(h).transpose(1, 2)))
        return x + self.dropout(h)


class AttentionBlock(nn.Module):
    """Residual multi-head attention of queries over a memory, with layer norm (MultiModel section 2.1).

    Self-attention when the memory is the query sequence itself; ``causal`` masks future positions (decoder).

    Args:
        dim: token width D.
        heads: attention heads (must divide ``dim``).
        dropout: attention dropout.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(
        self, x: Tensor, memory: Tensor | None = None, memory_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Args: x (B, T, D); memory (B, S, D) (default: ``x``); memory_mask (B, S), True for real tokens.

        Returns: (B, T, D).
        """
        query = self.norm(x)
        keys = query if memory is None else memory
        attn_mask = None
        if causal:
            attn_mask = torch.ones(x.shape[1], keys.shape[1], dtype=torch.bool, device=x.device).triu(1)
        padding = None if memory_mask is None else ~memory_mask
        out, _ = self.attention(query, keys, keys, key_padding_mask=padding, attn_mask=attn_mask, need_weights=False)
        return x + out
