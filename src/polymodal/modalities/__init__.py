"""Input adapters: turn raw inputs (WAV files, image arrays/files, strings, feature arrays) into model-ready tensors.

Each adapter has a pydantic config holding its defaults and a class with ``from_*`` methods that validate input and
raise a one-line :class:`polymodal.errors.DataError` naming the source. Learnable parts (patch embeddings, token
embeddings, encoders) do not belong here; they live in ``polymodal.models``. Datasets live in ``polymodal.data``.
"""

from polymodal.modalities.audio import AudioAdapter, AudioConfig, log_mel, mel_filterbank, read_wav, resample
from polymodal.modalities.features import FeaturesAdapter, FeaturesConfig, load_npy
from polymodal.modalities.image import ImageAdapter, ImageConfig
from polymodal.modalities.text import ByteTokenizer, TextAdapter, TextConfig

__all__ = [
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
