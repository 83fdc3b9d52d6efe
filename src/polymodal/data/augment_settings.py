"""The settings of training-time augmentation (``data.augment``), free of torch.

A recipe is validated with these classes before anything heavy is imported; :mod:`polymodal.data.augment`, which
applies them, re-exports them.
"""

from __future__ import annotations

from pydantic import Field

from polymodal.registry import ComponentConfig


class ImageAugment(ComponentConfig):
    """Random affine jitter of each image.

    Args:
        shift: largest translation, as a fraction of the image size.
        rotate: largest rotation in degrees.
        scale: largest relative zoom in or out.
    """

    shift: float = Field(0.1, ge=0.0, lt=1.0)
    rotate: float = Field(10.0, ge=0.0, le=180.0)
    scale: float = Field(0.1, ge=0.0, lt=1.0)


class AudioAugment(ComponentConfig):
    """Random time shift, SpecAugment-style masks and gain of each log-mel spectrogram.

    Args:
        shift: largest time shift, as a fraction of the frames (the clip moves within its padding).
        time_mask: width of one masked band of frames, at most this fraction of the frames.
        freq_mask: width of one masked band of mel bins, at most this fraction of the bins.
        gain_db: largest loudness change in dB (a constant added to the log-mel).
    """

    shift: float = Field(0.1, ge=0.0, lt=1.0)
    time_mask: float = Field(0.1, ge=0.0, lt=1.0)
    freq_mask: float = Field(0.1, ge=0.0, lt=1.0)
    gain_db: float = Field(6.0, ge=0.0)


class TextAugment(ComponentConfig):
    """Random typos in byte tokens.

    Args:
        typo: probability that a token is replaced by a random byte.
    """

    typo: float = Field(0.05, ge=0.0, lt=1.0)


class AugmentConfig(ComponentConfig):
    """Which kinds are augmented (``None``: not augmented); ``{}`` turns a kind on with its defaults."""

    image: ImageAugment | None = None
    audio: AudioAugment | None = None
    text: TextAugment | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.image, self.audio, self.text))
