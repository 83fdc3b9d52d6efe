"""Audio adapter: WAV files or waveforms to fixed-size log-mel spectrograms of shape (1, n_mels, max_frames)."""

from __future__ import annotations

import functools
import math
import struct
import warnings
from math import gcd
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile
import torch
from torch import Tensor

from polymodal.errors import DataError
from polymodal.modalities.adapters import ADAPTERS
from polymodal.modalities.settings import AudioConfig

# Added to the mel power before the log so silent bins stay finite; log(LOG_FLOOR) is also the padding value.
LOG_FLOOR = 1e-6
# Added to a clip's variance before normalising it (``normalize``), as in transformers' zero_mean_unit_var_norm.
WAVE_EPSILON = 1e-7
# Sample rates outside this range (telephone speech is 8 kHz, studio audio at most 384 kHz) mean a broken header.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
# A data chunk size of 0xFFFFFFFF is the placeholder that streaming writers (e.g. ffmpeg to a pipe) leave: read to EOF.
_STREAMED_SIZE = 0xFFFFFFFF


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    """Triangular HTK-mel filterbank without area normalisation.

    Filter ``m`` rises linearly from edge ``m`` to centre ``m + 1`` and falls to edge ``m + 2``, where the
    ``n_mels + 2`` edges are evenly spaced on the mel scale between ``f_min`` and ``f_max``. The triangle is
    evaluated at the FFT bin frequencies ``linspace(0, sample_rate / 2, n_freqs)``, so a filter reaches exactly 1
    only when a bin falls on its centre (no slaney area normalisation; weights are in [0, 1]).

    Args:
        n_freqs: number of FFT bins, ``n_fft // 2 + 1``.
        n_mels: number of filters.
        sample_rate: sample rate in Hz.
        f_min: lowest edge in Hz.
        f_max: highest edge in Hz.

    Returns:
        Tensor of shape (n_freqs, n_mels), float32.
    """
    bins = np.linspace(0.0, sample_rate / 2, n_freqs)
    edges = np.asarray(mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)))
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - left) / (centre - left)
    falling = (right - bins[:, None]) / (right - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None)).float()


@functools.lru_cache(maxsize=8)
def _cached_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    # Shared across calls; callers never modify it in place.
    return mel_filterbank(n_freqs, n_mels, sample_rate, f_min, f_max)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling with ``scipy.signal.resample_poly``.

    Args:
        wave: waveform of shape (T,).
        orig_sr: its sample rate in Hz.
        new_sr: wanted sample rate in Hz.

    Returns:
        Float32 array of shape (ceil(T * new_sr / orig_sr),).
    """
    if orig_sr == new_sr:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly  # imported when needed: scipy.signal takes most of a second to import

    divisor = gcd(int(orig_sr), int(new_sr))
    return resample_poly(wave, int(new_sr) // divisor, int(orig_sr) // divisor).astype(np.float32)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def check_sample_rate(sample_rate: int, source: str | Path) -> None:
    """Raises a DataError naming ``source`` unless ``sample_rate`` is in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise DataError(
            f"{source}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (broken header?)"
        )


def _check_not_truncated(path: Path) -> None:
    """Raises a DataError when a RIFF WAV's data chunk header promises more bytes than the file holds.

    Both readers silently return the samples that are there, so a cut-off download would otherwise train as a shorter
    clip. Files that are not plain RIFF/RIFX WAVs (RF64, other formats) are left to the readers.
    """
    size_on_disk = path.stat().st_size
    with path.open("rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RIFX") or riff[8:] != b"WAVE":
            return
        order = "<" if riff[:4] == b"RIFF" else ">"
        block_align = 1
        while len(header := f.read(8)) == 8:
            chunk_id, size = struct.unpack(f"{order}4sI", header)
            if chunk_id == b"fmt ":
                body = f.read(size)
                if len(body) >= 14:
                    block_align = max(1, struct.unpack(f"{order}H", body[12:14])[0])
                f.seek(size % 2, 1)
            elif chunk_id == b"data":
                available = size_on_disk - f.tell()
                if size != _STREAMED_SIZE and size > available:
                    raise DataError(
                        f"{path}: truncated WAV (the header promises {size // block_align} frames, "
                        f"the file holds {available // block_align})"
                    )
                return
            else:
                f.seek(size + size % 2, 1)  # chunks are padded to an even size


def _to_unit_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned with 128 as silence
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        # scipy left-aligns 24-bit samples in int32, so dividing by the container's range is right for all widths.
        return data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads a WAV file as mono float32 in [-1, 1].

    Integer formats are scaled by their range, several channels are averaged, and float samples are clipped to
    [-1, 1]. ``scipy.io.wavfile`` is tried first, then ``soundfile`` for formats scipy cannot read. Scipy's warnings
    about harmless oddities (unknown chunks, a RIFF size past the end) are silenced; the problems that matter are
    checked here and raised.

    Args:
        path: the WAV file.

    Returns:
        ``(wave, sample_rate)`` with ``wave`` of shape (T,).

    Raises:
        DataError: one line naming ``path`` when the file is missing, not a WAV, corrupt, truncated, empty, has NaN or
            inf samples, or a sample rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE].
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    _check_not_truncated(path)
    from scipy.io import wavfile  # imported when needed, like resample_poly

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            sample_rate, data = wavfile.read(path)
    except Exception as scipy_err:  # scipy raises ValueError, EOFError or struct.error on bad headers
        try:
            data, sample_rate = soundfile.read(path, dtype="float32", always_2d=False)
        except Exception:
            raise DataError(f"{path}: not a readable WAV file ({_one_line(scipy_err)})") from None
    data = np.asarray(data)
    if data.ndim == 2:
        data = _to_unit_float(data).mean(axis=1)
    elif data.ndim == 1:
        data = _to_unit_float(data)
    else:
        raise DataError(f"{path}: unexpected sample array of shape {data.shape}")
    check_sample_rate(int(sample_rate), path)
    if data.size == 0:
        raise DataError(f"{path}: contains no samples")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: contains NaN or inf samples")
    return np.clip(data, -1.0, 1.0), int(sample_rate)


def log_mel(wave: Tensor, cfg: AudioConfig) -> Tensor:
    """Log-mel spectrogram: STFT (hann window, centred frames), power, mel projection, ``log(x + 1e-6)``.

    Args:
        wave: waveform of shape (T,) at ``cfg.sample_rate``.
        cfg: front-end parameters.

    Returns:
        Tensor of shape (n_mels, 1 + T // hop_length), float32.
    """
    wave = wave.float()
    if wave.shape[0] <= cfg.n_fft // 2:
        # Reflect padding of centred frames needs more than n_fft // 2 samples; silence is the honest extension.
        wave = torch.nn.functional.pad(wave, (0, cfg.n_fft // 2 + 1 - wave.shape[0]))
    spec = torch.stft(
        wave,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window=torch.hann_window(cfg.n_fft, dtype=wave.dtype),
        center=True,
        return_complex=True,
    )
    power = spec.abs() ** 2  # (n_freqs, frames)
    bank = _cached_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.upper_frequency)
    return torch.log(bank.T @ power + LOG_FLOOR)


@ADAPTERS.register("audio", AudioConfig)
class AudioAdapter:
    """Turns waveforms or WAV files into log-mel tensors of shape (1, n_mels, max_frames), or with
    ``cfg.features == "waveform"`` into the resampled waveforms of shape (1, max_frames * hop_length).

    Args:
        cfg: front-end parameters.
    """

    # File suffixes it reads (a CSV manifest infers a column of them as this kind).
    extensions: ClassVar[tuple[str, ...]] = (".wav",)

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg

    def read(self, item: str | Path) -> Tensor:
        """One WAV file (a CSV manifest cell, an item to ``embed``)."""
        return self.from_file(item)

    def from_wave(self, wave: np.ndarray, sample_rate: int) -> Tensor:
        """Resamples ``wave`` (T,) from ``sample_rate`` to ``cfg.sample_rate`` and returns (1, n_mels, max_frames),
        or (1, max_frames * hop_length) samples for ``features: waveform``."""
        wave = np.asarray(wave)
        if wave.ndim != 1 or wave.size == 0:
            raise DataError(f"waveform: expected a non-empty 1-D array, got shape {wave.shape}")
        check_sample_rate(sample_rate, "waveform")
        samples = torch.from_numpy(resample(wave, sample_rate, self.cfg.sample_rate))
        if self.cfg.features == "waveform":
            if self.cfg.normalize:  # as wav2vec2's feature extractor: over the clip's own samples, not the padding
                samples = (samples - samples.mean()) / torch.sqrt(samples.var(unbiased=False) + WAVE_EPSILON)
            return self.fit_samples(samples)
        return self.fit_frames(log_mel(samples, self.cfg))

    def fit_samples(self, wave: Tensor) -> Tensor:
        """Crops (``cfg.crop``), or right-pads with zeros (silence), a (T,) waveform to (1, max_frames * hop_length)."""
        target = self.cfg.max_frames * self.cfg.hop_length
        if wave.shape[0] < target:
            return torch.nn.functional.pad(wave, (0, target - wave.shape[0])).unsqueeze(0)
        start = (wave.shape[0] - target) // 2
        if self.cfg.crop == "loudest":
            energy = torch.cat([wave.new_zeros(1, dtype=torch.float64), (wave.double() ** 2).cumsum(0)])
            start = int(torch.argmax(energy[target:] - energy[:-target]))
        return wave[start : start + target].unsqueeze(0)

    def from_file(self, path: str | Path) -> Tensor:
        """Reads a WAV file (see :func:`read_wav`) and returns (1, n_mels, max_frames)."""
        wave, sample_rate = read_wav(path)
        return self.from_wave(wave, sample_rate)

    def fit_frames(self, mel: Tensor) -> Tensor:
        """Crops (``cfg.crop``), or right-pads with log(1e-6) (silence), a (n_mels, T) log-mel to
        (1, n_mels, max_frames)."""
        frames = mel.shape[-1]
        target = self.cfg.max_frames
        if frames >= target:
            start = (frames - target) // 2
            if self.cfg.crop == "loudest" and frames > target:
                energy = torch.cat([mel.new_zeros(1), mel.double().exp().sum(0).cumsum(0)])
                start = int(torch.argmax(energy[target:] - energy[:-target]))
            return mel[:, start : start + target].unsqueeze(0)
        pad = mel.new_full((mel.shape[0], target - frames), math.log(LOG_FLOOR))
        return torch.cat([mel, pad], dim=1).unsqueeze(0)
