"""The embeddings of a trained model: what ``polymodal embed`` and a model's contrastive space return."""

from __future__ import annotations

from typing import Any


def model_embeddings(model: Any, inputs: dict[str, Any], lengths: dict[str, Any] | None) -> dict[str, Any]:
    """modality -> (B, D) features of a model's encoders, projected into its shared space when it has one
    (``contrastive``: a contrastive run's ``MultimodalModel``, MoMo)."""
    features = model.encode(inputs, lengths)
    return model.project(features) if getattr(model, "contrastive", False) else features
