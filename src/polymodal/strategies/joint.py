"""Joint training: one supervised loss on the fused output of every modality."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Strategy


class JointConfig(ComponentConfig):
    modality_dropout: float = 0.0


@STRATEGIES.register("joint", JointConfig)
class JointStrategy(Strategy):
    """Fused supervised training with optional modality dropout.

    Modality dropout hides each present modality of a sample with probability ``modality_dropout`` (never all of
    them), so the fused model learns to work when a modality is missing at test time.

    Args:
        model: the assembled model.
        task: ``"classification"`` or ``"regression"``.
        modality_dropout: per-sample, per-modality probability of hiding a modality during training.
    """

    def __init__(self, model: nn.Module, task: str, modality_dropout: float) -> None:
        super().__init__(model, task)
        self.modality_dropout = modality_dropout

    def _drop(self, present: dict[str, Tensor]) -> dict[str, Tensor]:
        names = list(present)
        mask = torch.stack([present[m] for m in names], dim=1)  # (B, M)
        keep = torch.rand(mask.shape, device=mask.device) >= self.modality_dropout
        dropped = mask & keep
        # A sample that would lose every modality keeps one of its present modalities, chosen at random.
        empty = ~dropped.any(dim=1, keepdim=True)
        pick = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, -1.0).argmax(dim=1, keepdim=True)
        rescue = torch.zeros_like(mask).scatter(1, pick, True) & mask
        dropped = torch.where(empty, rescue, dropped)
        return {m: dropped[:, i] for i, m in enumerate(names)}

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        present = self._drop(batch["present"]) if self.modality_dropout > 0 else batch["present"]
        outputs = self.model(batch["inputs"], present, batch.get("lengths"))
        return {"loss": self.loss(outputs, batch["target"])}
