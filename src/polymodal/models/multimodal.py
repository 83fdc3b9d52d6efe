"""The assembled multimodal model: encoders per modality, a fusion and a head."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultimodalModel(nn.Module):
    """Encoders keyed by modality, a fusion and a head (composition, as TorchMultimodal's late_fusion).

    Modalities in the batch without an encoder are ignored; modalities with an encoder but absent from the batch
    count as missing.

    Args:
        encoders: modality -> encoder with ``out_dim``; each maps (B, ...) to (B, D_m).
        fusion: combines features and presence masks through the head.
        head: maps the fused feature to outputs.
        unimodal_heads: optional modality -> head mapping (B, D_m) to (B, C).
        predictors: optional modality -> network mapping the fused representation (B, D_fused) to (B, D_m).
        projections: optional modality -> network mapping (B, D_m) features into one shared contrastive space; the
            model then has a learnable InfoNCE temperature too (``scale()``).
        temperature: initial contrastive temperature, with ``projections``.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: nn.Module,
        head: nn.Module,
        unimodal_heads: Mapping[str, nn.Module] | None = None,
        predictors: Mapping[str, nn.Module] | None = None,
        projections: Mapping[str, nn.Module] | None = None,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.head = head
        # Optional parts of multi-task strategies (self_mi): an output head per modality on its own feature, and a
        # network per modality that predicts that modality's feature from the fused representation.
        self.unimodal_heads = nn.ModuleDict(unimodal_heads or {})
        self.predictors = nn.ModuleDict(predictors or {})
        # Contrastive spaces (CLIP-style): projections into one space and the temperature, a parameter like CLIP's
        # logit_scale because objectives own no parameters.
        self.projections = nn.ModuleDict(projections or {})
        if projections:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        # Inputs that arrive as their encoder's (B, D_m) output already (a frozen encoder's cached features, see
        # polymodal.data.feature_cache); ``encode`` passes them through.
        self.precomputed: set[str] = set()

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def encode(self, inputs: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Returns modality -> (B, D_m) features for every modality that has an encoder and is in ``inputs``
        (``precomputed`` inputs are those features already)."""
        lengths = lengths or {}
        return {
            m: inputs[m] if m in self.precomputed else enc(inputs[m], lengths.get(m))
            for m, enc in self.encoders.items()
            if m in inputs
        }

    @property
    def contrastive(self) -> bool:
        """Whether the model has contrastive projections into one shared space."""
        return bool(self.projections)

    def project(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised contrastive embeddings (B, projection_dim) of per-modality (B, D_m) features."""
        if not self.projections:
            raise ValueError("the model has no contrastive projections (model.options.projection_dim)")
        return {m: F.normalize(self.projections[m](f), dim=-1) for m, f in features.items()}

    def scale(self) -> Tensor:
        """Scalar InfoNCE inverse temperature of the contrastive projections."""
        return self.logit_scale.exp()

    def forward(
        self,
        inputs: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        lengths: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Returns (B, C) outputs from the fused features of the present modalities."""
        return self.fuse(self.encode(inputs, lengths), present)

    def fuse(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], head: nn.Module | None = None
    ) -> Tensor:
        """Fuses per-modality (B, D_m) features through ``head`` (default: the model's head).

        ``nn.Identity()`` as the head returns the fused representation itself (for concat fusion, the masked
        concatenation), which is what the predictors take.
        """
        features = dict(features)
        batch = next(iter(features.values())).shape[0] if features else 0
        device = next(self.parameters()).device
        for m, enc in self.encoders.items():
            if m not in features:  # modality not in this batch at all: absent everywhere
                features[m] = torch.zeros(batch, cast(int, enc.out_dim), device=device)
        mask = {m: present.get(m, torch.zeros(batch, dtype=torch.bool, device=device)) for m in self.encoders}
        return self.fusion(features, mask, self.head if head is None else head)
