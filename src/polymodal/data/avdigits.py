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


def _load_arrays(path: Path, split: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    keys = ("image", "label", "audio", "text", "text_label")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[f"{split}_{key}"] for key in keys}
            arrays.update({key: archive[key] for key in ("mel", "mel_offsets", "mel_range")})
            meta = json.loads(str(archive["meta"]))
    except KeyError as err:
        raise DataError(f"{path}: missing array {err} (not an avdigits file?)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable avdigits .npz file ({' '.join(str(err).split())})") from None
    return arrays, meta


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
        arrays, self.meta = _load_arrays(self.path, split)
        self._check_audio(audio)

        self.targets = torch.from_numpy(arrays["label"].astype(np.int64))
        # The digit each phrase names; differs from the target where the text was mis-transcribed.
        self.text_targets = torch.from_numpy(arrays["text_label"].astype(np.int64))
        self.texts = [str(t) for t in arrays["text"]]
        self._images = ImageAdapter(image or ImageConfig()).from_arrays(arrays["image"], source=str(self.path))
        self._audio_index, self._audio = self._audio_bank(arrays, AudioAdapter(audio))
        text_adapter = TextAdapter(text or TextConfig())
        self._tokens = [text_adapter.from_text(t) for t in self.texts]

    def _check_audio(self, audio: AudioConfig) -> None:
        stored = self.meta.get("audio", {})
        wanted = {**audio.model_dump(include=set(MEL_PARAMS)), "f_max": audio.upper_frequency}
        diff = [f"{k}={wanted[k]} (stored {stored.get(k)})" for k in MEL_PARAMS if stored.get(k) != wanted[k]]
        if diff:
            raise ConfigError(f"avdigits: audio config differs from the stored spectrograms: {', '.join(diff)}")

    @staticmethod
    def _audio_bank(arrays: dict[str, np.ndarray], adapter: AudioAdapter) -> tuple[Tensor, Tensor]:
        # Dequantise and fit only the recordings this split uses, once each, then index per sample.
        used, index = np.unique(arrays["audio"], return_inverse=True)
        lo, hi = (float(v) for v in arrays["mel_range"])
        offsets = arrays["mel_offsets"]
        fitted = []
        for r in used:
            q = arrays["mel"][offsets[r] : offsets[r + 1]]  # (frames, n_mels) uint8
            mel = torch.from_numpy(lo + q.astype(np.float32) * np.float32((hi - lo) / 255.0)).T
            fitted.append(adapter.fit_frames(mel.contiguous()))
        return torch.from_numpy(index.astype(np.int64)), torch.stack(fitted)  # (R, 1, n_mels, max_frames)

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
