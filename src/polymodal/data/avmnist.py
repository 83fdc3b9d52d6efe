"""AV-MNIST: PCA-degraded MNIST digits paired with noisy spoken digits (FSDD), after MultiBench / CentralNet.

``build_avmnist`` writes the arrays once (``polymodal data build avmnist``); ``AVMNIST`` memory-maps them. The
recipe and every deviation from the original are documented in ``docs/avmnist.md``. Layout of the output folder
(all plain ``.npy``, loadable without pickle):

- ``{split}_image.npy``: (N, 28, 28) uint8, the PCA reconstruction clipped to [0, 255] and rounded;
- ``{split}_audio.npy``: (N, 112, 112) uint8 log-power spectrogram (frequency x time), ``q = 255 (dB - lo) /
  (hi - lo)`` clipped, with ``[lo, hi]`` = ``meta.json["audio_db_range"]``;
- ``{split}_label.npy``: (N,) uint8 digit; ``{split}_recording.npy``: (N,) int16 index into
  ``meta.json["recordings"]``; ``{split}_snr_db.npy``: (N,) float32 signal-to-noise ratio of the added noise;
- ``meta.json``: parameters, sizes and provenance.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import spectrogram
from torch.utils.data import Dataset
from tqdm import tqdm

from polymodal.data.mnist import read_mnist
from polymodal.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
TEST_SPEAKER = "yweweler"
VAL_SIZE = 5000
SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000  # one second: recordings are centre-cropped or zero-padded to this length
# 222-sample windows give 112 frequency bins; a 70-sample hop over 8000 samples gives 112 frames.
NPERSEG, NOVERLAP = 222, 152
AUDIO_DB_RANGE = (-130.0, -30.0)
NOISE_SECONDS = 600
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance pink (1/f power) noise of ``n`` samples, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (noise - noise.mean()) / noise.std()


def fit_pca(images: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and top ``components`` principal directions (K, D) of flattened (N, D) float images."""
    mean = images.mean(0)
    centred = images - mean
    # The (D, D) covariance is small (784 x 784), so an eigendecomposition beats an SVD of the (N, D) data.
    values, vectors = np.linalg.eigh(centred.T @ centred / len(images))
    order = np.argsort(values)[::-1][:components]
    return mean, vectors[:, order].T


def degrade_images(images: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Projects (N, 28, 28) uint8 images on the PCA ``basis`` and reconstructs them as uint8."""
    flat = images.reshape(len(images), -1).astype(np.float64) - mean
    recon = (flat @ basis.T) @ basis + mean
    return np.clip(np.rint(recon), 0, 255).astype(np.uint8).reshape(images.shape)


def log_spectrogram(wave: np.ndarray) -> np.ndarray:
    """(CLIP_SAMPLES,) float waveform in [-1, 1] -> (112, 112) uint8 quantised log-power spectrogram."""
    _, _, power = spectrogram(wave, fs=SAMPLE_RATE, nperseg=NPERSEG, noverlap=NOVERLAP)
    db = 10.0 * np.log10(power + 1e-20)
    lo, hi = AUDIO_DB_RANGE
    return np.clip(np.rint((db - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def fit_clip(wave: np.ndarray) -> np.ndarray:
    """Centre-crops or centre-pads a waveform to CLIP_SAMPLES."""
    if len(wave) >= CLIP_SAMPLES:
        start = (len(wave) - CLIP_SAMPLES) // 2
        return wave[start : start + CLIP_SAMPLES]
    out = np.zeros(CLIP_SAMPLES, dtype=wave.dtype)
    start = (CLIP_SAMPLES - len(wave)) // 2
    out[start : start + len(wave)] = wave
    return out


def _read_recordings(fsdd: Path) -> tuple[list[str], list[np.ndarray], np.ndarray, np.ndarray]:
    folder = fsdd / "recordings" if (fsdd / "recordings").is_dir() else fsdd
    files = sorted(p for p in folder.glob("*.wav") if _NAME.match(p.name))
    if not files:
        raise DataError(f"{fsdd}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) found")
    names, waves, digits, test = [], [], [], []
    for path in files:
        digit, speaker, _ = _NAME.match(path.name).groups()  # type: ignore[union-attr]
        try:
            rate, wave = wavfile.read(path)
        except ValueError as err:
            raise DataError(f"{path}: not a readable WAV file ({err})") from None
        if rate != SAMPLE_RATE or wave.ndim != 1 or wave.dtype != np.int16:
            raise DataError(f"{path}: expected 8 kHz mono 16-bit PCM as in FSDD, got {rate} Hz {wave.dtype}")
        names.append(path.name)
        waves.append(wave.astype(np.float64) / 32768.0)
        digits.append(int(digit))
        test.append(speaker == TEST_SPEAKER)
    return names, waves, np.array(digits), np.array(test)


def pair_recordings(labels: np.ndarray, digits: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each label, a recording of the same digit from ``pool``, cycling through a shuffled list per digit."""
    out = np.empty(len(labels), dtype=np.int64)
    for d in range(10):
        where = np.flatnonzero(labels == d)
        candidates = rng.permutation(np.flatnonzero(pool & (digits == d)))
        if len(candidates) == 0:
            raise DataError(f"no FSDD recording of digit {d} for this split")
        out[where] = np.resize(candidates, len(where))
    return out


def build_avmnist(
    mnist: str | Path,
    fsdd: str | Path,
    out: str | Path,
    components: int = 196,
    snr_db: tuple[float, float] = (0.0, 10.0),
    seed: int = 0,
    val_size: int = VAL_SIZE,
    progress: bool = True,
) -> dict[str, Any]:
    """Builds the AV-MNIST arrays in ``out`` and returns the contents of its ``meta.json``.

    Args:
        mnist: Keras-style ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``).
        fsdd: the FSDD folder (or its ``recordings/`` folder) of ``{digit}_{speaker}_{index}.wav`` files.
        out: output folder (created; must not already hold a build).
        components: PCA components kept for the images (fit on the training split only, 55,000 images).
        snr_db: range of the uniform per-sample SNR of the added pink noise, in dB.
        seed: seed of the pairing, the SNRs and the noise segments.
        val_size: the last ``val_size`` MNIST training images form the validation split.
        progress: draw a progress bar.

    Raises:
        DataError: unreadable inputs, or ``out`` already holds a build.
    """
    mnist, fsdd, out = Path(mnist), Path(fsdd), Path(out)
    if (out / "meta.json").exists():
        raise DataError(f"{out}: already holds an AV-MNIST build (meta.json exists); choose another --out")
    if not 1 <= components <= 784:
        raise ConfigError(f"--components: must be in 1..784, got {components}")
    arrays = read_mnist(mnist)
    names, waves, digits, test_pool = _read_recordings(fsdd)
    rng = np.random.default_rng(seed)
    n_train = len(arrays["x_train"]) - val_size
    if n_train < 1 or val_size < 1:
        raise DataError(f"{mnist}: {len(arrays['x_train'])} training images cannot give {val_size} for validation")
    mean, basis = fit_pca(arrays["x_train"][:n_train].reshape(n_train, -1).astype(np.float64), components)
    images = {
        "train": arrays["x_train"][:n_train],
        "val": arrays["x_train"][n_train:],
        "test": arrays["x_test"],
    }
    labels = {"train": arrays["y_train"][:n_train], "val": arrays["y_train"][n_train:], "test": arrays["y_test"]}
    noise = pink_noise(NOISE_SECONDS * SAMPLE_RATE, rng)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(v) for v in labels.values())
    bar = tqdm(total=total, desc="avmnist", disable=None if progress else True, dynamic_ncols=True)
    sizes = {}
    for split in SPLITS:
        n = len(labels[split])
        sizes[split] = n
        pool = test_pool if split == "test" else ~test_pool
        recording = pair_recordings(labels[split], digits, pool, rng)
        snr = rng.uniform(snr_db[0], snr_db[1], n).astype(np.float32)
        starts = rng.integers(0, len(noise) - CLIP_SAMPLES, n)
        np.save(out / f"{split}_image.npy", degrade_images(images[split], mean, basis))
        np.save(out / f"{split}_label.npy", labels[split].astype(np.uint8))
        np.save(out / f"{split}_recording.npy", recording.astype(np.int16))
        np.save(out / f"{split}_snr_db.npy", snr)
        audio = np.lib.format.open_memmap(out / f"{split}_audio.npy", mode="w+", dtype=np.uint8, shape=(n, 112, 112))
        for i in range(n):
            speech = waves[recording[i]]
            # SNR against the speech power over the recording itself, not over the padded clip.
            scale = np.sqrt(np.mean(speech**2) / 10.0 ** (snr[i] / 10.0))
            clip = fit_clip(speech) + scale * noise[starts[i] : starts[i] + CLIP_SAMPLES]
            audio[i] = log_spectrogram(clip)
            bar.update(1)
        audio.flush()
        del audio
    bar.close()
    meta = {
        "format": "avmnist-1",
        "sizes": sizes,
        "pca_components": components,
        "pca_fit": f"first {n_train} MNIST training images",
        "test_speaker": TEST_SPEAKER,
        "noise": "pink (1/f) noise, random segments of one 600 s track",
        "snr_db": list(snr_db),
        "sample_rate": SAMPLE_RATE,
        "clip_samples": CLIP_SAMPLES,
        "spectrogram": {"nperseg": NPERSEG, "noverlap": NOVERLAP, "window": "tukey(0.25)", "scaling": "density"},
        "audio_db_range": list(AUDIO_DB_RANGE),
        "seed": seed,
        "recordings": names,
        "sources": {"mnist": str(mnist), "fsdd": str(fsdd)},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


class AVMNIST(Dataset):
    """One split of a built AV-MNIST folder, memory-mapped.

    A sample's image is (1, 28, 28) and its audio (1, 112, 112), both float32 in [0, 1] (the stored uint8 / 255).

    Args:
        split: ``"train"`` (55,000), ``"val"`` (5,000) or ``"test"`` (10,000) in a full build.
        root: the folder written by :func:`build_avmnist`.

    Raises:
        ConfigError: unknown split.
        DataError: missing folder or arrays.
    """

    modalities = ("image", "audio")
    class_names = [str(d) for d in range(10)]

    def __init__(self, split: str, root: str | Path) -> None:
        if split not in SPLITS:
            raise ConfigError(f"avmnist: unknown split {split!r} (choose from {', '.join(SPLITS)})")
        self.root = Path(root)
        if not (self.root / "meta.json").is_file():
            raise DataError(f"{self.root}: not an AV-MNIST build (no meta.json; run `polymodal data build avmnist`)")
        try:
            self._image = np.load(self.root / f"{split}_image.npy", mmap_mode="r", allow_pickle=False)
            self._audio = np.load(self.root / f"{split}_audio.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(self.root / f"{split}_label.npy", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{self.root}: unreadable AV-MNIST {split} arrays ({' '.join(str(err).split())})") from None
        self.targets = torch.from_numpy(labels.astype(np.int64))
        if not len(self._image) == len(self._audio) == len(self.targets):
            raise DataError(f"{self.root}: {split} arrays have different lengths")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = torch.from_numpy(np.asarray(self._image[i], dtype=np.float32) / 255.0)
        audio = torch.from_numpy(np.asarray(self._audio[i], dtype=np.float32) / 255.0)
        return {"inputs": {"image": image[None], "audio": audio[None]}, "target": self.targets[i], "index": i}
