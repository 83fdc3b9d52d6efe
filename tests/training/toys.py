"""Toy data, model and strategy shared by the Trainer tests (imported as ``toys``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from polymodal.data.collate import Collate
from polymodal.data.spec import DataSpec
from polymodal.strategies.base import Strategy


class ToyDataset(Dataset):
    """``size`` samples of a (3, 4) ``features`` sequence; the class is whether the mean of the first column > 0."""

    def __init__(self, size: int = 24, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 3, 4, generator=generator)
        self.y = (self.x[:, :, 0].mean(dim=1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": {"features": self.x[index]}, "target": self.y[index], "index": index}


class ToyModel(nn.Module):
    """Mean over valid steps, dropout (so the RNG matters), then a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs: dict[str, Tensor], present: dict[str, Tensor], lengths: dict[str, Tensor]) -> Tensor:
        x, n = inputs["features"], lengths["features"]
        valid = torch.arange(x.shape[1]) < n[:, None]  # (B, L)
        pooled = (x * valid[..., None]).sum(1) / n.clamp(min=1)[:, None]
        return self.linear(self.dropout(pooled))


class ToyStrategy(Strategy):
    """Supervised loss; counts its steps in ``state_dict`` and turns the loss NaN at step ``nan_at`` (1-based)."""

    def __init__(self, model: nn.Module, nan_at: int | None = None) -> None:
        super().__init__(model, DataSpec("classification", ("features",)))
        self.nan_at = nan_at
        self.calls = 0

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        self.calls += 1
        loss = self.loss(self.predict(batch), batch["target"])
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "double": 2 * loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = state["calls"]


def accuracy_on(dataset: ToyDataset) -> Callable[[Strategy], dict[str, float]]:
    """An ``evaluate`` callback: accuracy and loss of the strategy's model on ``dataset``."""
    batch = Collate()([dataset[i] for i in range(len(dataset))])

    def evaluate(strategy: Strategy) -> dict[str, float]:
        with torch.no_grad():
            outputs = strategy.predict(batch)
        return {
            "accuracy": float((outputs.argmax(-1) == batch["target"]).float().mean()),
            "loss": float(strategy.loss(outputs, batch["target"])),
        }

    return evaluate
