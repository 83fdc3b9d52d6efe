"""The contrastive space interface and the spaces polymodal builds: a trained model's, and a bridge's unified space.

A contrastive space embeds each of its modalities into one L2-normalised space. Ex-MCR (arXiv 2310.08884) extends a
frozen *base* space with a *leaf* space that shares one *overlapping* modality with it (e.g. image-text base and
audio-text leaf, overlapping through text); :class:`UnifiedSpace` is the result. Pretrained spaces are in
:mod:`polymodal.spaces.pretrained`, memory banks in :mod:`polymodal.spaces.banks` and pseudo-pairs in
:mod:`polymodal.spaces.pairs`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.items import item_batches
from polymodal.errors import ConfigError
from polymodal.models import CMCRProjector
from polymodal.models.embed import model_embeddings

BASE, LEAF = "base", "leaf"
SIDES = (BASE, LEAF)


class ContrastiveSpace:
    """A frozen pretrained contrastive space: one encoder per modality into one normalised embedding space.

    Implementations hold their own weights and never expose them to an optimizer; ``embed`` runs without gradients.
    """

    @property
    def modalities(self) -> list[str]:
        """The modalities the space can embed."""
        raise NotImplementedError

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality, already converted by the space's own adapter -> (B, D) L2-normalised
        embeddings."""
        raise NotImplementedError

    def takes_tensors(self, modality: str) -> bool:
        """Whether ``embed`` takes polymodal's collated tensors of ``modality`` (else only ``embed_items`` works)."""
        return False

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        """Raw inputs of one modality (file paths for image/audio, strings for text) -> (N, D) L2-normalised
        float32 embeddings; each space converts them with its own preprocessing."""
        raise NotImplementedError


class ModelSpace(ContrastiveSpace):
    """A contrastive space over a polymodal model with ``encode(inputs, lengths) -> {modality: (B, D)}``.

    Models with contrastive projections (``contrastive`` true: a ``contrastive`` run's ``MultimodalModel``, MoMo)
    embed through them (``project``); other models' per-modality features must share one width. The model is put
    in eval mode and its parameters stop requiring gradients, so neither dropout nor batch-norm statistics nor an
    optimizer can change it: embeddings are reproducible bit for bit. This is a plain object, not an
    ``nn.Module``, so the space's weights never become part of a strategy's model or checkpoint.

    Args:
        model: a trained model.
        device: where the model runs.
        data: the run's ``DataConfig``, whose adapters convert raw inputs for ``embed_items``.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", data: Any = None) -> None:
        self.model: Any = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.data = data

    @property
    def modalities(self) -> list[str]:
        return list(self.model.modalities)

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality -> (B, D) L2-normalised float32 embeddings."""
        if modality not in self.modalities:
            raise ConfigError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")
        lengths_by_modality = {} if lengths is None else {modality: lengths.to(self.device)}
        with torch.no_grad():
            features = model_embeddings(self.model, {modality: inputs.to(self.device)}, lengths_by_modality)
        return F.normalize(features[modality].float(), dim=-1)

    def takes_tensors(self, modality: str) -> bool:
        return True

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        if self.data is None:
            raise ValueError("this space was built without its data settings; it embeds tensors only")
        parts = [
            self.embed(modality, batch["inputs"][modality], batch["lengths"].get(modality)).cpu()
            for batch in item_batches(self.data, modality, items)
        ]
        return torch.cat(parts)


def unified_modalities(base: ContrastiveSpace, leaf: ContrastiveSpace) -> list[str]:
    """The modalities of a bridged space: the base space's, then the leaf space's others."""
    return [*base.modalities, *(m for m in leaf.modalities if m not in base.modalities)]


class UnifiedSpace(ContrastiveSpace):
    """The space a bridge builds: base and leaf spaces linked by a trained projector.

    With Ex-MCR's :class:`~polymodal.models.BridgeProjector` the unified space *is* the base space: base modalities
    are embedded by the frozen base space unchanged, leaf-only modalities by the leaf space and then projected. With
    the C-MCR-style :class:`~polymodal.models.CMCRProjector` every modality is projected into a new space.

    Args:
        base: the base space.
        leaf: the leaf space.
        projector: the trained projector (put in eval mode, no gradients).
    """

    def __init__(self, base: ContrastiveSpace, leaf: ContrastiveSpace, projector: nn.Module) -> None:
        self.base, self.leaf = base, leaf
        self.projector = projector.eval().requires_grad_(False)
        self.device = next(projector.parameters()).device

    @property
    def modalities(self) -> list[str]:
        return unified_modalities(self.base, self.leaf)

    def _route(self, modality: str) -> tuple[ContrastiveSpace, Any]:
        if modality in self.base.modalities:
            if isinstance(self.projector, CMCRProjector):
                return self.base, self.projector.base
            return self.base, None
        if modality in self.leaf.modalities:
            return self.leaf, self.projector.leaf if isinstance(self.projector, CMCRProjector) else self.projector
        raise ConfigError(
            f"--modality {modality}: neither bridged space has it (they have: {', '.join(self.modalities)})"
        )

    def _project(self, projector: Any, embedded: Tensor) -> Tensor:
        if projector is None:
            return embedded
        with torch.no_grad():
            return projector(embedded.to(self.device)).float()

    def takes_tensors(self, modality: str) -> bool:
        return self._route(modality)[0].takes_tensors(modality)

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        space, projector = self._route(modality)
        return self._project(projector, space.embed(modality, inputs, lengths))

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        space, projector = self._route(modality)
        return self._project(projector, space.embed_items(modality, items)).cpu()
