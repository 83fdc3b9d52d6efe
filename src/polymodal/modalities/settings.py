"""The adapters' settings (``data.image``, ``data.audio``, ``data.text``, ``data.features``), free of torch.

A recipe is validated with these classes before anything heavy is imported, so a config error answers at once; each
adapter module re-exports its own config class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from polymodal.registry import ComponentConfig


class ImageConfig(ComponentConfig):
    """Image geometry and normalisation.

    Args:
        size: output height and width in pixels (images are stretched to a square, not cropped).
        channels: 1 (gray) or 3 (RGB).
        mean: subtracted after scaling pixels to [0, 1].
        std: divides after subtracting ``mean``.
    """

    size: int = Field(28, gt=0)
    channels: Literal[1, 3] = 1
    mean: float = 0.5
    std: float = Field(0.5, gt=0.0)


class AudioConfig(ComponentConfig):
    """Log-mel front end.

    Args:
        sample_rate: rate every waveform is resampled to, in Hz.
        n_fft: STFT window and FFT length in samples.
        hop_length: STFT hop in samples.
        n_mels: number of mel bands.
        f_min: lowest filter edge in Hz.
        f_max: highest filter edge in Hz; ``None`` means ``sample_rate / 2``.
        max_frames: frames kept per clip (cropped as ``crop`` says, or right-padded with silence).
        crop: which frames a longer clip keeps: ``centre`` (the middle ones) or ``loudest`` (the window of
            ``max_frames`` with the most energy, so a word late in a long recording is kept).
    """

    sample_rate: int = Field(8000, gt=0)
    n_fft: int = Field(256, gt=0)
    hop_length: int = Field(128, gt=0)
    n_mels: int = Field(32, gt=0)
    f_min: float = Field(0.0, ge=0.0)
    f_max: float | None = None
    max_frames: int = Field(64, gt=0)
    crop: Literal["centre", "loudest"] = "centre"

    @model_validator(mode="after")
    def _check_band(self) -> AudioConfig:
        if not self.f_min < self.upper_frequency <= self.sample_rate / 2:
            raise ValueError(f"need f_min < f_max <= sample_rate / 2 = {self.sample_rate / 2}")
        return self

    @property
    def upper_frequency(self) -> float:
        """``f_max`` with ``None`` resolved to the Nyquist frequency."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)


class TextConfig(ComponentConfig):
    """Tokenisation limits.

    Args:
        max_length: tokens kept per text (UTF-8 bytes, truncated on the right).
    """

    max_length: int = Field(64, gt=0)


class FeaturesConfig(ComponentConfig):
    """Checks applied to feature arrays.

    Args:
        dim: expected last dimension D; ``None`` accepts any.
        max_length: keep at most this many steps T; ``None`` keeps all.
    """

    dim: int | None = Field(None, gt=0)
    max_length: int | None = Field(None, gt=0)
