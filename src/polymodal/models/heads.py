"""Output heads: map a fused (B, D) feature to (B, C) logits or (B, 1) regression outputs."""

from __future__ import annotations

from torch import Tensor, nn

from polymodal.registry import ComponentConfig, Registry

HEADS = Registry("head")


class LinearHeadConfig(ComponentConfig):
    pass


@HEADS.register("linear", LinearHeadConfig)
class LinearHead(nn.Module):
    """One linear layer. Args: in_dim: input size D; out_dim: outputs C."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, C)."""
        return self.net(x)


class MLPHeadConfig(ComponentConfig):
    hidden: int = 128
    dropout: float = 0.1


@HEADS.register("mlp", MLPHeadConfig)
class MLPHead(nn.Module):
    """Two-layer MLP. Args: in_dim: input size D; out_dim: outputs C; hidden: hidden size; dropout: before output."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, C)."""
        return self.net(x)
