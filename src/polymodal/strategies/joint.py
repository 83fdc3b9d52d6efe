"""Joint training: one supervised loss on the fused output of every modality."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from polymodal.data.spec import DataSpec
from polymodal.models.multimodal import MultimodalModel
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class JointConfig(ComponentConfig):
    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    unimodal_weight: float = Field(0.0, ge=0.0)


@STRATEGIES.register("joint", JointConfig)
class JointStrategy(Strategy[MultimodalModel, JointConfig]):
    """Fused supervised training with optional modality dropout and per-modality auxiliary losses.

    Modality dropout hides each present modality of a sample with probability ``modality_dropout`` (never all of
    them), so the fused model learns to work when a modality is missing at test time.

    With ``unimodal_weight`` > 0, every step also scores each modality alone through the model's own fusion and
    head (the others marked absent, exactly as "each modality alone" is evaluated) and adds the mean of those
    losses, times the weight, to the fused loss. A modality that the fused loss alone would leave unused (modality
    laziness: an easy modality does all the work) then has to learn on its own; the encoders run once per step.

    Args:
        model: the assembled model; ``unimodal_weight`` needs one with ``encode`` and ``fuse`` (``multimodal``).
        data: the data's description (``classification`` or ``regression``).
        modality_dropout: per-sample, per-modality probability of hiding a modality during training.
        unimodal_weight: weight of the mean per-modality loss (0: fused loss only).
    """

    @classmethod
    def needs(cls, options: JointConfig) -> Needs:
        fusion = {"fusion": "strategy.unimodal_weight"} if options.unimodal_weight > 0 else {}
        return Needs(model={"outputs": "strategy.name", **fusion})

    def __init__(self, model: MultimodalModel, data: DataSpec, modality_dropout: float, unimodal_weight: float) -> None:
        super().__init__(model, data)
        self.modality_dropout = modality_dropout
        self.unimodal_weight = unimodal_weight

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
        if self.unimodal_weight == 0:
            outputs = self.model(batch["inputs"], present, batch.get("lengths"))
            return {"loss": self.loss(outputs, batch["target"])}
        features = self.model.encode(batch["inputs"], batch.get("lengths"))
        fused = self.loss(self.model.fuse(features, present), batch["target"])
        losses = {}
        for m in features:
            keep = batch["present"][m]
            if bool(keep.any()):
                alone = {k: (v if k == m else torch.zeros_like(v)) for k, v in batch["present"].items()}
                outputs = self.model.fuse(features, alone)
                losses[m] = self.loss(outputs[keep], batch["target"][keep])
        unimodal = torch.stack(list(losses.values())).mean() if losses else fused * 0.0
        return {
            "loss": fused + self.unimodal_weight * unimodal,
            "fused_loss": fused.detach(),
            **{f"{m}_loss": v.detach() for m, v in losses.items()},
        }
