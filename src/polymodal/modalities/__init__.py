"""Input adapters: turn raw inputs (WAV files, image arrays/files, strings, feature arrays) into model-ready tensors.

Each adapter has a pydantic config holding its defaults and a class with ``from_*`` methods that validate input and
raise a one-line :class:`polymodal.errors.DataError` naming the source. Learnable parts (patch embeddings, token
embeddings, encoders) do not belong here; they live in ``polymodal.models``. Datasets live in ``polymodal.data``.

Each adapter kind is registered in ``ADAPTERS`` (:mod:`polymodal.modalities.adapters`) with its settings class, so
CSV manifests and ``embed`` read every kind through one table. The configs live in the torch-free
:mod:`polymodal.modalities.settings`; the adapters (which import torch) are imported on first use, so validating a
recipe stays light.
"""

import importlib
from typing import Any

from polymodal.modalities.settings import AudioConfig, FeaturesConfig, ImageConfig, TextConfig

_LAZY = {
    "AudioAdapter": "audio",
    "log_mel": "audio",
    "mel_filterbank": "audio",
    "read_wav": "audio",
    "resample": "audio",
    "FeaturesAdapter": "features",
    "load_npy": "features",
    "ImageAdapter": "image",
    "ByteTokenizer": "text",
    "TextAdapter": "text",
}

__all__ = [
    "ADAPTERS",
    "AudioAdapter",
    "AudioConfig",
    "ByteTokenizer",
    "FeaturesAdapter",
    "FeaturesConfig",
    "ImageAdapter",
    "ImageConfig",
    "TextAdapter",
    "TextConfig",
    "load_npy",
    "log_mel",
    "mel_filterbank",
    "read_wav",
    "resample",
]


def __getattr__(name: str) -> Any:
    if name == "ADAPTERS":
        return importlib.import_module(f"{__name__}.adapters").registered()
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
