"""AVDigits: the packaged image + audio + text digit dataset (MNIST, FSDD log-mels, noisy multilingual phrases).

The file is built by ``scripts/build_avdigits.py``; ``assets/AVDIGITS.md`` documents its layout and licences.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from polymodal.errors import ConfigError, DataError
from polymodal.modalities.audio import AudioAdapter, AudioConfig
from polymodal.modalities.image import ImageAdapter, ImageConfig
from polymodal.modalities.text import TextAdapter, TextConfig

DEFAULT_PATH = Path(__file__).parent / "assets" / "avdigits.npz"
SPLITS = ("train", "val", "test")
# Audio parameters that change the stored spectrograms; max_frames only changes the crop, done at load time.
MEL_PARAMS = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")
BANK_KEYS = ("mel", "mel_offsets", "mel_range")  # the recording bank: every recording's quantised log-mel


def load_arrays(path: str | Path | None, keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays ``keys`` of an avdigits file (``None``: the packaged one) and its metadata; one DataError if not."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in keys}
            meta = json.loads(str(archive["meta"]))
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (not an avdigits file?)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable avdigits .npz file ({' '.join(str(err).split())})") from None
    return arrays, meta


def check_audio(meta: dict[str, Any], audio: AudioConfig) -> None:
    """Raises a ConfigError when ``audio``'s mel parameters differ from those the file's spectrograms were made with."""
    stored = meta.get("audio", {})
    wanted = {**audio.model_dump(include=set(MEL_PARAMS)), "f_max": audio.upper_frequency}
    diff = [f"{k}={wanted[k]} (stored {stored.get(k)})" for k in MEL_PARAMS if stored.get(k) != wanted[k]]
    if diff:
        raise ConfigError(f"avdigits: audio config differs from the stored spectrograms: {', '.join(diff)}")


def fitted_mels(arrays: dict[str, np.ndarray], recordings: np.ndarray, adapter: AudioAdapter) -> Tensor:
    """(R, 1, n_mels, max_frames): the stored log-mels of ``recordings`` dequantised and fit to ``max_frames``."""
    lo, hi = (float(v) for v in arrays["mel_range"])
    offsets = arrays["mel_offsets"]
    fitted = []
    for r in recordings:
        q = arrays["mel"][offsets[r] : offsets[r + 1]]  # (frames, n_mels) uint8
        mel = torch.from_numpy(lo + q.astype(np.float32) * np.float32((hi - lo) / 255.0)).T
        fitted.append(adapter.fit_frames(mel.contiguous()))
    return torch.stack(fitted)


def recording_bank(path: str | Path | None = None, audio: AudioConfig | None = None) -> tuple[list[str], Tensor]:
    """Every FSDD recording of an avdigits file: names ``{digit}_{speaker}_{take}`` and log-mels (R, 1, n_mels, T).

    Args:
        path: the ``.npz`` file; ``None`` uses the packaged asset.
        audio: audio settings; the mel parameters must equal the stored ones, ``max_frames`` may differ.
    """
    audio = audio or AudioConfig()
    arrays, meta = load_arrays(path, ("recordings", *BANK_KEYS))
    check_audio(meta, audio)
    names = [str(n) for n in arrays["recordings"]]
    return names, fitted_mels(arrays, np.arange(len(names)), AudioAdapter(audio))


def digit_images(split: str, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 28, 28) uint8 MNIST images of an avdigits split (``None``: the packaged file) and their (N,) digits."""
    if split not in SPLITS:
        raise ConfigError(f"avdigits: unknown split {split!r} (choose from {', '.join(SPLITS)})")
    arrays, _ = load_arrays(path, (f"{split}_image", f"{split}_label"))
    return arrays[f"{split}_image"], arrays[f"{split}_label"]


class AVDigits(Dataset):
    """Digits 0-9 seen as an MNIST image, heard as an FSDD recording and read as a noisy phrase.

    Text is deliberately imperfect: about 12 % of phrases name a confusable digit and about 25 % carry typos, so no
    single modality is an oracle. Tensors are precomputed at construction, so ``__getitem__`` only indexes.

    Args:
        split: ``"train"`` (12000), ``"val"`` (2000) or ``"test"`` (3000).
        path: the ``.npz`` file; ``None`` uses the packaged asset.
        image: image adapter settings (default :class:`ImageConfig`).
        audio: audio settings; the mel parameters must equal the stored ones, ``max_frames`` may differ.
        text: tokenizer settings (default :class:`TextConfig`).

    Raises:
        ConfigError: unknown split, or audio mel parameters that differ from the stored ones.
        DataError: missing or corrupt file.
    """

    modalities = ("image", "audio", "text")
    num_classes = 10
    class_names = [str(d) for d in range(10)]

    def __init__(
        self,
        split: str,
        path: str | Path | None = None,
        image: ImageConfig | None = None,
        audio: AudioConfig | None = None,
        text: TextConfig | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"avdigits: unknown split {split!r} (choose from {', '.join(SPLITS)})")
        self.split = split
        self.path = Path(path) if path is not None else DEFAULT_PATH
        audio = audio or AudioConfig()
        keys = tuple(f"{split}_{key}" for key in ("image", "label", "audio", "text", "text_label"))
        stored, self.meta = load_arrays(self.path, (*keys, *BANK_KEYS))
        arrays = {key.removeprefix(f"{split}_"): value for key, value in stored.items()}
        check_audio(self.meta, audio)

        self.targets = torch.from_numpy(arrays["label"].astype(np.int64))
        # The digit each phrase names; differs from the target where the text was mis-transcribed.
        self.text_targets = torch.from_numpy(arrays["text_label"].astype(np.int64))
        self.texts = [str(t) for t in arrays["text"]]
        self._images = ImageAdapter(image or ImageConfig()).from_arrays(arrays["image"], source=str(self.path))
        self._audio_index, self._audio = self._audio_bank(arrays, AudioAdapter(audio))
        text_adapter = TextAdapter(text or TextConfig())
        self._tokens = [text_adapter.from_text(t) for t in self.texts]

    @staticmethod
    def _audio_bank(arrays: dict[str, np.ndarray], adapter: AudioAdapter) -> tuple[Tensor, Tensor]:
        # Dequantise and fit only the recordings this split uses, once each, then index per sample.
        used, index = np.unique(arrays["audio"], return_inverse=True)
        return torch.from_numpy(index.astype(np.int64)), fitted_mels(arrays, used, adapter)  # (R, 1, n_mels, T)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "inputs": {
                "image": self._images[i],  # (C, size, size)
                "audio": self._audio[self._audio_index[i]],  # (1, n_mels, max_frames)
                "text": self._tokens[i],  # (L,)
            },
            "target": self.targets[i],
            "index": i,
        }
