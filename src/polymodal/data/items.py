"""Raw inputs of one modality (file paths, strings for text) as collated batches, for embedding them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from polymodal.data.collate import Collate
from polymodal.data.vocab import adapter_kind
from polymodal.modalities.adapters import adapter


def item_batches(data: Any, modality: str, items: list[Any], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Collated batches of raw inputs of one modality (file paths, or strings for text), converted with the
    adapters of a run's ``DataConfig``; tensors are taken as they are (model-ready inputs)."""
    convert = adapter(adapter_kind(modality), getattr(data, adapter_kind(modality))).read
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        inputs = [x if isinstance(x, torch.Tensor) else convert(x) for x in chunk]
        yield Collate()([{"inputs": {modality: x}, "target": 0, "index": i} for i, x in enumerate(inputs)])
