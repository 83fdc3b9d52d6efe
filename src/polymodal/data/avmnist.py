"""AV-MNIST: PCA-degraded MNIST digits paired with noisy spoken digits (FSDD), after MultiBench / CentralNet.

``build_avmnist`` writes the arrays once from the user's MNIST and FSDD (``polymodal data build avmnist``); ``AVMNIST``
memory-maps them. Without such a build, ``embedded_avmnist_splits`` makes a small AV-MNIST the same way from data
that ships with the package: the avdigits images (12,000 / 2,000 / 3,000) and 600 FSDD recordings
(``assets/fsdd_clips.npz``, built by ``scripts/build_fsdd_clips.py``), with spectrograms computed when first read.
The recipe and every deviation from the original are documented in ``docs/avmnist.md``. Layout of the output folder
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
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from polymodal.data.avdigits import digit_images
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
COMPONENTS, SNR_DB = 196, (0.0, 10.0)
MU_LAW = 255
CLIPS_PATH = Path(__file__).parent / "assets" / "fsdd_clips.npz"
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
    from scipy.signal import spectrogram  # imported when needed: a built AV-MNIST is read without scipy.signal

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


def _recording_labels(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(R,) digit of each FSDD file name and whether it is the test speaker's."""
    groups = []
    for name in names:
        match = _NAME.match(name)
        if match is None:
            raise DataError(f"{name}: not an FSDD recording name ({{digit}}_{{speaker}}_{{index}}.wav)")
        groups.append(match.groups())
    return np.array([int(g[0]) for g in groups]), np.array([g[1] == TEST_SPEAKER for g in groups])


def _read_recordings(fsdd: Path) -> tuple[list[str], list[np.ndarray]]:
    folder = fsdd / "recordings" if (fsdd / "recordings").is_dir() else fsdd
    files = sorted(p for p in folder.glob("*.wav") if _NAME.match(p.name))
    if not files:
        raise DataError(f"{fsdd}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) found")
    from scipy.io import wavfile

    waves = []
    for path in files:
        try:
            rate, wave = wavfile.read(path)
        except ValueError as err:
            raise DataError(f"{path}: not a readable WAV file ({err})") from None
        if rate != SAMPLE_RATE or wave.ndim != 1 or wave.dtype != np.int16:
            raise DataError(f"{path}: expected 8 kHz mono 16-bit PCM as in FSDD, got {rate} Hz {wave.dtype}")
        waves.append(wave.astype(np.float64) / 32768.0)
    return [p.name for p in files], waves


def mu_law_encode(wave: np.ndarray) -> np.ndarray:
    """Float waveform in [-1, 1] -> uint8 mu-law codes (mu = MU_LAW), the 8-bit telephone encoding."""
    compressed = np.sign(wave) * np.log1p(MU_LAW * np.abs(wave)) / np.log1p(MU_LAW)
    return np.clip(np.rint((compressed + 1.0) * 127.5), 0, 255).astype(np.uint8)


def mu_law_decode(codes: np.ndarray) -> np.ndarray:
    """uint8 mu-law codes (mu = MU_LAW) -> float64 waveform in [-1, 1]."""
    compressed = codes.astype(np.float64) / 127.5 - 1.0
    return np.sign(compressed) * np.expm1(np.abs(compressed) * np.log1p(MU_LAW)) / MU_LAW


def read_clips(path: str | Path = CLIPS_PATH) -> tuple[list[str], list[np.ndarray]]:
    """FSDD file names and float64 waveforms of a clips file (``scripts/build_fsdd_clips.py``; default: packaged)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            codes, offsets, stems = archive["wave"], archive["offsets"], archive["recordings"]
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (not an fsdd_clips file?)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable fsdd_clips .npz file ({' '.join(str(err).split())})") from None
    waves = [mu_law_decode(codes[offsets[r] : offsets[r + 1]]) for r in range(len(stems))]
    return [f"{stem}.wav" for stem in stems], waves


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


@dataclass(frozen=True)
class NoisyPairing:
    """Per sample of a split: the recording paired with it, the SNR of the added noise and where its noise starts."""

    recording: np.ndarray  # (N,) int64 index into the recordings
    snr_db: np.ndarray  # (N,) float32
    noise_start: np.ndarray  # (N,) int64 index into the noise track


def plan_audio(
    labels: dict[str, np.ndarray],
    digits: np.ndarray,
    test_pool: np.ndarray,
    snr_db: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, NoisyPairing]]:
    """The noise track and each split's pairing: test samples hear the test speaker, the others the other speakers.

    Args:
        labels: split -> (N,) digits of its images, for every split of SPLITS.
        digits: (R,) digit of each recording.
        test_pool: (R,) whether each recording belongs to the test split.
        snr_db: range of the uniform per-sample SNR.
        rng: drawn from in a fixed order (track, then per split: pairing, SNRs, noise starts).
    """
    noise = pink_noise(NOISE_SECONDS * SAMPLE_RATE, rng)
    plans = {}
    for split in SPLITS:
        n = len(labels[split])
        pool = test_pool if split == "test" else ~test_pool
        recording = pair_recordings(labels[split], digits, pool, rng)
        snr = rng.uniform(snr_db[0], snr_db[1], n).astype(np.float32)
        plans[split] = NoisyPairing(recording, snr, rng.integers(0, len(noise) - CLIP_SAMPLES, n))
    return noise, plans


def noisy_spectrogram(speech: np.ndarray, noise: np.ndarray, snr_db: float, start: int) -> np.ndarray:
    """(112, 112) uint8 spectrogram of ``speech`` fit to one second plus ``noise[start:]`` at ``snr_db``."""
    # SNR against the speech power over the recording itself, not over the padded clip.
    scale = np.sqrt(np.mean(speech**2) / 10.0 ** (snr_db / 10.0))
    return log_spectrogram(fit_clip(speech) + scale * noise[start : start + CLIP_SAMPLES])


def build_avmnist(
    mnist: str | Path,
    fsdd: str | Path,
    out: str | Path,
    components: int = COMPONENTS,
    snr_db: tuple[float, float] = SNR_DB,
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
    names, waves = _read_recordings(fsdd)
    digits, test_pool = _recording_labels(names)
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
    noise, plans = plan_audio(labels, digits, test_pool, snr_db, rng)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(v) for v in labels.values())
    bar = tqdm(total=total, desc="avmnist", disable=None if progress else True, dynamic_ncols=True)
    sizes = {}
    for split in SPLITS:
        n, plan = len(labels[split]), plans[split]
        sizes[split] = n
        np.save(out / f"{split}_image.npy", degrade_images(images[split], mean, basis))
        np.save(out / f"{split}_label.npy", labels[split].astype(np.uint8))
        np.save(out / f"{split}_recording.npy", plan.recording.astype(np.int16))
        np.save(out / f"{split}_snr_db.npy", plan.snr_db)
        audio = np.lib.format.open_memmap(out / f"{split}_audio.npy", mode="w+", dtype=np.uint8, shape=(n, 112, 112))
        for i in range(n):
            audio[i] = noisy_spectrogram(waves[plan.recording[i]], noise, plan.snr_db[i], plan.noise_start[i])
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


class EmbeddedAVMNIST(Dataset):
    """One split of the small AV-MNIST made from packaged data (:func:`embedded_avmnist_splits`); samples as AVMNIST.

    Each spectrogram is computed (as :func:`build_avmnist` computes it) when its sample is first read, then kept.

    Args:
        images: (N, 28, 28) uint8 degraded images.
        labels: (N,) digits.
        waves: the recordings' float waveforms.
        pairing: the split's recording, SNR and noise segment per sample.
        noise: the noise track.
    """

    modalities = ("image", "audio")
    class_names = [str(d) for d in range(10)]

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, waves: list[np.ndarray], pairing: NoisyPairing, noise: np.ndarray
    ) -> None:
        self._images, self._waves, self._noise = images, waves, noise
        self.pairing = pairing
        self.targets = torch.from_numpy(labels.astype(np.int64))
        # Pages of the cache are only committed when written: a run on a few samples only pays for those.
        self._audio = np.empty((len(labels), 112, 112), dtype=np.uint8)
        self._ready = np.zeros(len(labels), dtype=bool)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not self._ready[i]:
            p = self.pairing
            speech = self._waves[p.recording[i]]
            self._audio[i] = noisy_spectrogram(speech, self._noise, p.snr_db[i], p.noise_start[i])
            self._ready[i] = True
        image = torch.from_numpy(self._images[i].astype(np.float32) / 255.0)
        audio = torch.from_numpy(self._audio[i].astype(np.float32) / 255.0)
        return {"inputs": {"image": image[None], "audio": audio[None]}, "target": self.targets[i], "index": i}


def embedded_avmnist_splits(
    components: int = COMPONENTS, snr_db: tuple[float, float] = SNR_DB, seed: int = 0, clips: str | Path = CLIPS_PATH
) -> tuple[EmbeddedAVMNIST, EmbeddedAVMNIST, EmbeddedAVMNIST]:
    """Train, val and test of a small AV-MNIST from the packaged avdigits images and FSDD clips.

    The steps are :func:`build_avmnist`'s: PCA fit on the training images, test speaker only in test, pairing by
    digit, pink noise at a uniform per-sample SNR.

    Args:
        components: PCA components kept for the images.
        snr_db: range of the uniform per-sample SNR of the added pink noise, in dB.
        seed: seed of the pairing, the SNRs and the noise segments.
        clips: the FSDD clips file (default: the packaged one).
    """
    parts = {split: digit_images(split) for split in SPLITS}
    names, waves = read_clips(clips)
    digits, test_pool = _recording_labels(names)
    train = parts["train"][0]
    mean, basis = fit_pca(train.reshape(len(train), -1).astype(np.float64), components)
    labels = {split: y for split, (_, y) in parts.items()}
    noise, plans = plan_audio(labels, digits, test_pool, snr_db, np.random.default_rng(seed))
    train_set, val_set, test_set = (
        EmbeddedAVMNIST(degrade_images(x, mean, basis), y, waves, plans[split], noise)
        for split, (x, y) in parts.items()
    )
    return train_set, val_set, test_set
