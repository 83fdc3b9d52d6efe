"""The adapters' settings (``data.image``, ``data.audio``, ``data.text``, ``data.features``), free of torch.

A recipe is validated with these classes before anything heavy is imported, so a config error answers at once; each
adapter module re-exports its own config class.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, model_validator

from polymodal.errors import ConfigError
from polymodal.modalities.huggingface import read_processor
from polymodal.registry import ComponentConfig


class ImageConfig(ComponentConfig):
    """Image geometry and normalisation.

    Args:
        size: output height and width in pixels (images are stretched to a square, not cropped).
        channels: 1 (gray) or 3 (RGB).
        mean: subtracted after scaling pixels to [0, 1]: one value, or one per channel.
        std: divides after subtracting ``mean``: one value, or one per channel.
        processor: a Hugging Face model directory whose image processor (``preprocessor_config.json``) sets
            ``size``, ``channels`` (3), ``mean`` and ``std``, except those the config sets itself.
    """

    size: int = Field(28, gt=0)
    channels: Literal[1, 3] = 1
    mean: float | tuple[float, ...] = 0.5
    std: PositiveFloat | tuple[PositiveFloat, ...] = 0.5
    processor: str | None = None

    @model_validator(mode="after")
    def _fill_from_processor(self) -> ImageConfig:
        if self.processor is not None:
            for key, value in image_processor_settings(read_processor(self.processor, "data.image.processor")).items():
                if key not in self.model_fields_set:
                    setattr(self, key, value)
        for key in ("mean", "std"):
            value = getattr(self, key)
            if isinstance(value, tuple) and len(value) != self.channels:
                raise ValueError(f"{key} has {len(value)} values for {self.channels} channels")
        return self


def image_processor_settings(processor: dict[str, Any]) -> dict[str, Any]:
    """``data.image`` settings from a Hugging Face image processor's JSON: the output size (its crop size when it
    crops, else its resize size; a square), 3 channels and its mean and std (none when it does not normalise)."""
    size = processor.get("crop_size") if processor.get("do_center_crop") else processor.get("size")
    if isinstance(size, dict):
        size = size.get("height", size.get("shortest_edge"))
    settings: dict[str, Any] = {"channels": 3}
    if isinstance(size, int):
        settings["size"] = size
    if processor.get("do_normalize", True) and "image_mean" in processor and "image_std" in processor:
        settings["mean"], settings["std"] = tuple(processor["image_mean"]), tuple(processor["image_std"])
    else:
        settings["mean"], settings["std"] = 0.0, 1.0
    return settings


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
        features: ``log_mel`` (1, n_mels, max_frames) spectrograms, or ``waveform``: the resampled samples
            themselves, (1, max_frames * hop_length) (the span the spectrogram covers, cropped or zero-padded), for
            models that take raw audio (wav2vec2, HuBERT).
        normalize: ``waveform`` only: scale each clip to zero mean and unit variance before padding (wav2vec2's
            ``do_normalize``).
        processor: a Hugging Face model directory whose raw-waveform feature extractor (``preprocessor_config.json``,
            e.g. wav2vec2's) sets ``features`` (waveform), ``sample_rate`` and ``normalize``, except those the config
            sets itself.
    """

    sample_rate: int = Field(8000, gt=0)
    n_fft: int = Field(256, gt=0)
    hop_length: int = Field(128, gt=0)
    n_mels: int = Field(32, gt=0)
    f_min: float = Field(0.0, ge=0.0)
    f_max: float | None = None
    max_frames: int = Field(64, gt=0)
    crop: Literal["centre", "loudest"] = "centre"
    features: Literal["log_mel", "waveform"] = "log_mel"
    normalize: bool = False
    processor: str | None = None

    @model_validator(mode="after")
    def _fill_from_processor(self) -> AudioConfig:
        if self.processor is not None:
            where = "data.audio.processor"
            extractor = read_processor(self.processor, where)
            if extractor.get("feature_size") != 1 or "sampling_rate" not in extractor:
                raise ConfigError(
                    f"{where}: {self.processor} has no raw-waveform feature extractor (feature_size 1, as wav2vec2's); "
                    "set the data.audio log-mel settings instead"
                )
            settings = {
                "features": "waveform",
                "sample_rate": int(extractor["sampling_rate"]),
                "normalize": bool(extractor.get("do_normalize", False)),
            }
            for key, value in settings.items():
                if key not in self.model_fields_set:
                    setattr(self, key, value)
        return self

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
    """Tokenisation.

    Args:
        max_length: tokens kept per text (truncated on the right).
        tokenizer: a Hugging Face model directory whose tokenizer makes the tokens (for an ``hf`` text encoder);
            ``None``: UTF-8 bytes.
    """

    max_length: int = Field(64, gt=0)
    tokenizer: str | None = None


class FeaturesConfig(ComponentConfig):
    """Checks applied to feature arrays.

    Args:
        dim: expected last dimension D; ``None`` accepts any.
        max_length: keep at most this many steps T; ``None`` keeps all.
    """

    dim: int | None = Field(None, gt=0)
    max_length: int | None = Field(None, gt=0)
