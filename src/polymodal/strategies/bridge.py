"""Bridge training (Ex-MCR, and a C-MCR-style baseline): projectors between frozen contrastive spaces, trained on
pseudo-pairs."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from polymodal.data.collate import move_to
from polymodal.data.spec import DataSpec
from polymodal.models.bridge import BridgeProjector, CMCRProjector
from polymodal.objectives import dense_alignment_loss, info_nce
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class BridgeConfig(ComponentConfig):
    intra_weight: float = Field(1.0, ge=0)
    # leaf modality -> base modality -> weight of that InfoNCE term; a pair not listed weighs 1.
    weights: dict[str, dict[str, float]] = Field(default_factory=dict)


@STRATEGIES.register("bridge", BridgeConfig)
class BridgeStrategy(Strategy[BridgeProjector | CMCRProjector, BridgeConfig]):
    """Trains only the projectors between two frozen contrastive spaces, on pseudo-pair tuples.

    With a :class:`BridgeProjector` (``model.name: exmcr``) this is Ex-MCR (arXiv 2310.08884): the leaf space is
    projected into the base space with the dense alignment loss (every leaf modality against every base modality,
    plus the intra-space term). With a :class:`CMCRProjector` (``model.name: cmcr``) it is the C-MCR-style baseline
    (arXiv 2305.14381): both spaces are projected into a new one; inter-space InfoNCE between the overlapping
    modality's two embeddings and between the spaces' other modalities, and intra-space InfoNCE between the
    overlapping modality and each other modality of the same space (closing the modality gap).

    Both spaces stay frozen by construction: a batch holds their precomputed embeddings of pseudo-pair tuples (see
    ``polymodal.spaces.pseudo_pairs``), so the projectors are the only modules with parameters, the only thing in
    the optimizer and in checkpoints. With Ex-MCR, the base space's own retrieval is therefore unchanged bit for bit.

    A batch is ``{"base": {modality: (B, D_base)}, "leaf": {modality: (B, D_leaf)}}``, row i of every tensor being
    one pseudo-pair tuple; the overlapping modality is the one both mappings name.

    Args:
        model: the projector.
        data: the description of the pseudo-pairs (no targets); kept for the strategy contract.
        intra_weight: weight of the intra-space InfoNCE terms.
        weights: Ex-MCR only: leaf modality -> base modality -> weight of that inter-space InfoNCE term (default 1).
    """

    @classmethod
    def needs(cls, options: BridgeConfig) -> Needs:
        dense = {"dense_alignment": "strategy.weights"} if options.weights else {}
        return Needs(model={"projector": "strategy.name", **dense})

    def __init__(
        self,
        model: BridgeProjector | CMCRProjector,
        data: DataSpec,
        intra_weight: float,
        weights: dict[str, dict[str, float]],
    ) -> None:
        super().__init__(model, data)
        self.intra_weight = intra_weight
        self.weights = {(leaf, base): w for leaf, row in weights.items() for base, w in row.items()}

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        scale = self.model.scale()
        if isinstance(self.model, CMCRProjector):
            loss = self._cmcr_loss(self.model, batch["base"], batch["leaf"], scale)
        else:
            leaf = batch["leaf"]
            projected = {m: self.model(x) for m, x in leaf.items()}
            intra = {m: self.model.intra_space(x) for m, x in leaf.items()}
            loss = dense_alignment_loss(projected, batch["base"], scale, intra, self.weights, self.intra_weight)
        return {"loss": loss, "scale": scale.detach()}

    def _cmcr_loss(
        self, model: CMCRProjector, base: dict[str, Tensor], leaf: dict[str, Tensor], scale: Tensor
    ) -> Tensor:
        overlap = set(base) & set(leaf)
        pb = {m: model.base(x) for m, x in base.items()}
        pl = {m: model.leaf(x) for m, x in leaf.items()}
        inter = [
            info_nce(pb[b], pl[a], scale)
            for b, a in product(pb, pl)
            if (b in overlap and a in overlap) or (b not in overlap and a not in overlap)
        ]
        intra = [
            info_nce(side[o], side[m], scale) for side in (pb, pl) for o in overlap for m in side if m not in overlap
        ]
        return torch.stack(inter).sum() + self.intra_weight * (torch.stack(intra).sum() if intra else 0.0)

    @torch.no_grad()
    def evaluate(self, loader: Any, device: Any, plots_dir: Path | None = None) -> dict[str, Any]:
        """The mean training loss over ``loader``'s pseudo-pairs (validation needs no labels): ``{"loss": ...}``."""
        total, count = 0.0, 0
        for batch in loader:
            n = len(next(iter(batch["leaf"].values())))
            total += float(self.step(move_to(batch, device))["loss"]) * n
            count += n
        return {"metrics": {"loss": total / max(count, 1)}}
