"""Contrastive training of a shared embedding space from paired modalities (CLIP), e.g. the spaces Ex-MCR bridges."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polymodal.data.collate import move_to
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.eval.metrics import cross_modal_retrieval
from polymodal.models.multimodal import MultimodalModel
from polymodal.objectives import info_nce
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class ContrastiveConfig(ComponentConfig):
    # Modality pairs aligned by InfoNCE; default: every pair of the model's modalities.
    pairs: list[tuple[str, str]] | None = None


@STRATEGIES.register("contrastive", ContrastiveConfig)
class ContrastiveStrategy(Strategy[MultimodalModel, ContrastiveConfig]):
    """Symmetric InfoNCE (CLIP, arXiv 2103.00020) between the projected embeddings of paired modalities.

    A batch's samples are the pairs: row i of one modality is the positive of row i of the other, every other row a
    negative. Only samples with both modalities of a pair present count for that pair. The run is evaluated by
    cross-modal retrieval on held-out data, where a gallery item is relevant when it has the query's target (e.g.
    the same digit): Recall@1/5/10 and mAP for every ordered pair, and ``r1``, their mean Recall@1, the selection
    metric.

    Args:
        model: a ``MultimodalModel`` with contrastive projections (``model.options.projection_dim``).
        data: the data's description (targets only define relevance in evaluation).
        pairs: modality pairs to align (default: every pair of the model's modalities).
    """

    @classmethod
    def needs(cls, options: ContrastiveConfig) -> Needs:
        inputs = {m: "strategy.pairs" for pair in options.pairs or () for m in pair}
        return Needs(model={"projections": "strategy.name"}, inputs=inputs, min_modalities=2)

    def __init__(self, model: MultimodalModel, data: DataSpec, pairs: list[tuple[str, str]] | None) -> None:
        super().__init__(model, data)
        modalities = list(model.modalities)
        self.pairs = [(a, b) for a, b in pairs] if pairs else list(combinations(modalities, 2))
        for pair in self.pairs:
            for m in pair:
                if m not in modalities:
                    raise ConfigError(f"strategy.pairs: {m!r} has no encoder (the model has: {', '.join(modalities)})")
            if pair[0] == pair[1]:
                raise ConfigError(f"strategy.pairs: {list(pair)} pairs a modality with itself")
        if not self.pairs:
            raise ConfigError("strategy.name: contrastive needs at least two modalities with encoders")

    def embed(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """modality -> (B, D) L2-normalised embeddings of a batch, in the shared space."""
        return self.model.project(self.model.encode(batch["inputs"], batch.get("lengths")))

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        embedded = self.embed(batch)
        scale = self.model.scale()
        terms = []
        for a, b in self.pairs:
            both = batch["present"][a] & batch["present"][b]
            if int(both.sum()) >= 2:  # one pair alone has no negative
                terms.append(info_nce(embedded[a][both], embedded[b][both], scale))
        # A batch without two complete pairs contributes nothing (zero loss, still connected to the graph).
        loss = torch.stack(terms).mean() if terms else scale * 0.0
        return {"loss": loss, "scale": scale.detach()}

    def predict(self, batch: dict[str, Any]) -> Tensor:
        raise ConfigError("strategy.name: a contrastive run has no class outputs; use its embeddings (polymodal embed)")

    @torch.no_grad()
    def embeddings(self, loader: Any, device: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Embeddings and targets of every present sample of ``loader``, per modality, on the CPU."""
        parts: dict[str, list[Tensor]] = {}
        targets: dict[str, list[Tensor]] = {}
        for batch in loader:
            batch = move_to(batch, device)
            for m, x in self.embed(batch).items():
                keep = batch["present"][m]
                parts.setdefault(m, []).append(x[keep].float().cpu())
                targets.setdefault(m, []).append(batch["target"][keep].cpu())
        return {m: torch.cat(p) for m, p in parts.items()}, {m: torch.cat(t) for m, t in targets.items()}

    def evaluate(self, loader: Any, device: Any, plots_dir: Path | None = None) -> dict[str, Any]:
        embedded, targets = self.embeddings(loader, device)
        return {"metrics": cross_modal_retrieval(embedded, targets, self.pairs)}
