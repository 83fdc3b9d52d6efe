"""Pretrained contrastive models as polymodal :class:`~polymodal.spaces.ContrastiveSpace` objects (Ex-MCR spaces).

Weights are always read from a local path, never from a hub:

- :class:`HFClipSpace`: image-text CLIP in Hugging Face format (OpenAI or LAION CLIP, e.g.
  ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``), through ``transformers``.
- :class:`ClapSpace`: audio-text LAION-CLAP in Hugging Face format (e.g. ``laion/clap-htsat-unfused``), through
  ``transformers``.
- :class:`OpenClipSpace`: image-text CLIP checkpoints of the ``open_clip`` package.

``transformers`` comes with ``pip install 'polymodal[pretrained]'`` and ``open_clip`` with
``pip install 'polymodal[open-clip]'``; both are imported only when a space is built, so this module imports without
them. Every space is frozen (eval mode, no parameter requires gradients) and returns L2-normalised float32 CPU
embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.errors import ConfigError, DataError
from polymodal.modalities.audio import read_wav, resample
from polymodal.modalities.huggingface import import_transformers, load_model, load_tokenizer
from polymodal.spaces.base import ContrastiveSpace

KINDS = ("hf-clip", "clap", "open_clip")
BATCH_SIZE = 32


def load_pretrained_space(
    kind: str, path: str | Path, model_name: str | None = None, device: torch.device | str = "cpu"
) -> ContrastiveSpace:
    """Builds a frozen pretrained space from local weights.

    Args:
        kind: ``"hf-clip"`` (:class:`HFClipSpace`), ``"clap"`` (:class:`ClapSpace`) or ``"open_clip"``
            (:class:`OpenClipSpace`).
        path: a Hugging Face model directory (``save_pretrained`` layout) for ``hf-clip`` and ``clap``; an open_clip
            checkpoint file for ``open_clip``.
        model_name: the open_clip architecture (e.g. ``"ViT-B-32"``); required for ``open_clip`` only.
        device: where the model runs.

    Raises:
        ConfigError: unknown kind, missing or incomplete weights, or a missing optional dependency.
    """
    if kind == "hf-clip":
        return HFClipSpace(path, device)
    if kind == "clap":
        return ClapSpace(path, device)
    if kind == "open_clip":
        if not model_name:
            raise ConfigError("open_clip spaces need a model_name (the architecture, e.g. 'ViT-B-32')")
        return OpenClipSpace(model_name, path, device)
    raise ConfigError(f"unknown pretrained space kind {kind!r} (known: {', '.join(KINDS)})")


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: pretrained weights not found")
    return path


def _read_image(path: str) -> Any:
    """A PIL RGB image; DataError naming ``path`` when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as err:  # FileNotFoundError, UnidentifiedImageError, truncated files, decompression bombs
        raise DataError(f"{path}: not a readable image ({' '.join(str(err).split()) or type(err).__name__})") from None


def _pooled(output: Any) -> Tensor:
    """The projected features of ``get_*_features``: a tensor up to transformers 4.x, ``pooler_output`` from 5.0."""
    return output if isinstance(output, Tensor) else output.pooler_output


class _HFSpace(ContrastiveSpace):
    """A two-tower ``transformers`` model with a tokenizer (text) and a preprocessor (the other modality).

    Subclasses set ``_model_type`` (``config.json``'s ``model_type``), ``_other`` (the non-text modality) and
    ``_model_class`` (the ``transformers`` class name), and implement ``_prepare`` and ``_other_features``.
    """

    _model_type = ""
    _model_class = ""
    _other = ""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        what = f"{self._model_type} model"
        tokenizer_files = (("tokenizer.json",), ("vocab.json", "merges.txt"))
        model = load_model(
            self.path, what, self._model_class, self._check_type, required=("preprocessor_config.json", tokenizer_files)
        )
        self.tokenizer = load_tokenizer(self.path, f"{self._model_type} tokenizer")
        transformers = import_transformers(self.path, what)
        try:
            self.preprocessor = self._load_preprocessor(transformers, {"local_files_only": True})
        except Exception as err:  # OSError, ValueError for a broken preprocessor_config.json
            raise ConfigError(
                f"{self.path}: cannot load the {self._model_type} preprocessor ({' '.join(str(err).split())})"
            ) from None
        self.model: Any = model.to(device=self.device, dtype=torch.float32).eval().requires_grad_(False)

    def _check_type(self, config: Any) -> None:
        if config.model_type != self._model_type:
            raise ConfigError(f"{self.path}: holds a {config.model_type!r} model, not {self._model_type!r}")

    @property
    def modalities(self) -> list[str]:
        return [self._other, "text"]

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) preprocessed inputs -> (B, D) L2-normalised float32 embeddings.

        Args:
            modality: ``"text"`` or the space's other modality.
            inputs: ``input_ids`` (B, L) for text (right-padded), the preprocessor's ``pixel_values`` /
                ``input_features`` otherwise.
            lengths: (B,) token counts of right-padded ``input_ids`` (the attention mask); without them, CLAP masks
                the tokenizer's padding token and CLIP needs no mask (causal attention, pooled at the end token).
                Unused for other modalities.
        """
        if modality == "text":
            batch = {"input_ids": inputs.long()}
            if lengths is not None:
                positions = torch.arange(inputs.shape[1], device=inputs.device)
                batch["attention_mask"] = (positions[None, :] < lengths.to(inputs.device)[:, None]).long()
            elif self._mask_padding and self.tokenizer.pad_token_id is not None:
                batch["attention_mask"] = (inputs != self.tokenizer.pad_token_id).long()
            return self._features(modality, batch)
        return self._features(modality, {self._input_name: inputs.float()})

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        """Raw items (file paths, or strings for text) -> (N, D) L2-normalised float32 embeddings, ``BATCH_SIZE`` at
        a time.

        Raises:
            DataError: a file that cannot be read, naming it.
        """
        self._check(modality)
        parts = [self._features(modality, self._prepare(modality, batch)) for batch in _batches(list(items))]
        return torch.cat(parts) if parts else torch.empty(0, self._width(), dtype=torch.float32)

    def _features(self, modality: str, batch: dict[str, Tensor]) -> Tensor:
        self._check(modality)
        batch = {key: value.to(self.device) for key, value in batch.items()}
        with torch.no_grad():
            if modality == "text":
                output = self.model.get_text_features(**batch)
            else:
                output = self._other_features(**batch)
        return F.normalize(_pooled(output).float(), dim=-1).cpu()

    def _tokenize(self, texts: list[str], limit: int) -> dict[str, Tensor]:
        # Tokenizers without a model_max_length report a huge sentinel; the model's position table is the real limit.
        max_length = min(int(getattr(self.tokenizer, "model_max_length", limit) or limit), limit)
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _check(self, modality: str) -> None:
        if modality not in self.modalities:
            raise ValueError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")

    def _width(self) -> int:
        return int(self.model.config.projection_dim)

    _input_name = ""
    _mask_padding = False

    def _load_preprocessor(self, transformers: Any, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _prepare(self, modality: str, items: list[str]) -> dict[str, Tensor]:
        raise NotImplementedError

    def _other_features(self, **batch: Tensor) -> Any:
        raise NotImplementedError


class HFClipSpace(_HFSpace):
    """Image-text CLIP in Hugging Face format (``CLIPModel``), e.g. OpenAI or LAION CLIP checkpoints.

    Images are read with Pillow as RGB and converted by the checkpoint's image processor
    (``preprocessor_config.json``); texts by its tokenizer, truncated to the text model's context length.

    Args:
        path: directory of a ``save_pretrained`` CLIP model with its tokenizer and image processor.
        device: where the model runs.

    Raises:
        ConfigError: missing directory, missing files, not a CLIP model, or ``transformers`` not installed.
    """

    _model_type = "clip"
    _model_class = "CLIPModel"
    _other = "image"
    _input_name = "pixel_values"

    def _load_preprocessor(self, transformers: Any, kwargs: dict[str, Any]) -> Any:
        return transformers.AutoImageProcessor.from_pretrained(self.path, **kwargs)

    def _prepare(self, modality: str, items: list[str]) -> dict[str, Tensor]:
        if modality == "text":
            return self._tokenize(items, int(self.model.config.text_config.max_position_embeddings))
        images = [_read_image(item) for item in items]
        return {"pixel_values": self.preprocessor(images=images, return_tensors="pt")["pixel_values"]}

    def _other_features(self, **batch: Tensor) -> Any:
        return self.model.get_image_features(**batch)


class ClapSpace(_HFSpace):
    """Audio-text LAION-CLAP in Hugging Face format (``ClapModel``), e.g. ``laion/clap-htsat-unfused``.

    Audio files are read as mono float in [-1, 1] (``scipy.io.wavfile``, then ``soundfile``), resampled with
    ``scipy.signal.resample_poly`` to the feature extractor's sampling rate and converted one clip at a time by the
    checkpoint's ``ClapFeatureExtractor``. Its random choices (the crop of clips longer than its ``max_length_s``, the
    crops of fusion models, the ``is_longer`` flag of fusion batches) are drawn from a fixed seed, so a clip embeds
    the same way every time and whatever the batch it is in.

    Args:
        path: directory of a ``save_pretrained`` CLAP model with its tokenizer and feature extractor.
        device: where the model runs.

    Raises:
        ConfigError: missing directory, missing files, not a CLAP model, or ``transformers`` not installed.
    """

    _model_type = "clap"
    _model_class = "ClapModel"
    _other = "audio"
    _input_name = "input_features"
    _mask_padding = True

    def _load_preprocessor(self, transformers: Any, kwargs: dict[str, Any]) -> Any:
        return transformers.AutoFeatureExtractor.from_pretrained(self.path, **kwargs)

    def _prepare(self, modality: str, items: list[str]) -> dict[str, Tensor]:
        if modality == "text":
            # RoBERTa positions start after the padding index, so two rows of the position table are never used.
            return self._tokenize(items, int(self.model.config.text_config.max_position_embeddings) - 2)
        rate = int(self.preprocessor.sampling_rate)
        clips = [self._extract(resample(*read_wav(item), rate), rate) for item in items]
        return {key: torch.cat([clip[key] for clip in clips]) for key in ("input_features", "is_longer")}

    def _extract(self, wave: np.ndarray, rate: int) -> dict[str, Tensor]:
        state = np.random.get_state()
        np.random.seed(0)
        try:
            features = self.preprocessor(wave.astype(np.float64), sampling_rate=rate, return_tensors="pt")
        finally:
            np.random.set_state(state)
        return {"input_features": features["input_features"], "is_longer": features["is_longer"]}

    def _other_features(self, **batch: Tensor) -> Any:
        return self.model.get_audio_features(**batch)


def _import_open_clip() -> Any:
    try:
        import open_clip
    except Exception as err:  # ImportError, or torchvision failing to load its operators beside another torch
        raise ConfigError(
            "open_clip spaces need the open_clip package and a torchvision built for the installed torch "
            f"(pip install 'polymodal[open-clip]'); it failed to import ({' '.join(str(err).split())}). "
            "Alternatively, use the Hugging Face-format weights of the model with HFClipSpace (kind 'hf-clip')"
        ) from None
    return open_clip


class OpenClipSpace(ContrastiveSpace):
    """Image-text CLIP through the ``open_clip`` package, from a local checkpoint file.

    Images are read with Pillow as RGB and converted by the model's evaluation transform; texts by
    ``open_clip.get_tokenizer(model_name)``.

    Args:
        model_name: the open_clip architecture, e.g. ``"ViT-B-32"`` (``open_clip.list_models()``).
        path: the checkpoint file (``open_clip_pytorch_model.bin``, ``.safetensors`` or a ``.pt`` state dict).
        device: where the model runs.

    Raises:
        ConfigError: missing checkpoint, unknown architecture, unloadable checkpoint, or open_clip not importable.
    """

    def __init__(self, model_name: str, path: str | Path, device: torch.device | str = "cpu") -> None:
        self.path = _existing(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: not an open_clip checkpoint file")
        open_clip = _import_open_clip()
        self.device = torch.device(device)
        try:
            # An absolute path is never mistaken for one of open_clip's pretrained tags (which it would download).
            model, _, self.preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(self.path.resolve()), device=self.device
            )
            self.tokenizer: Callable[[list[str]], Tensor] = open_clip.get_tokenizer(model_name)
        except Exception as err:  # unknown architecture (RuntimeError), unreadable checkpoint, key mismatches
            raise ConfigError(
                f"{self.path}: cannot load open_clip model {model_name!r} ({' '.join(str(err).split())})"
            ) from None
        self.model: Any = model.float().eval().requires_grad_(False)

    @property
    def modalities(self) -> list[str]:
        return ["image", "text"]

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) transformed images or (B, L) token ids -> (B, D) L2-normalised float32 embeddings."""
        if modality not in self.modalities:
            raise ValueError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")
        with torch.no_grad():
            if modality == "text":
                features = self.model.encode_text(inputs.to(self.device).long())
            else:
                features = self.model.encode_image(inputs.to(self.device).float())
        return F.normalize(features.float(), dim=-1).cpu()

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        """Image paths or strings -> (N, D) L2-normalised float32 embeddings, ``BATCH_SIZE`` at a time.

        Raises:
            DataError: an image that cannot be read, naming it.
        """
        if modality not in self.modalities:
            raise ValueError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")
        parts = []
        for batch in _batches(list(items)):
            if modality == "text":
                inputs = self.tokenizer(batch)
            else:
                inputs = torch.stack([self.preprocess(_read_image(item)) for item in batch])
            parts.append(self.embed(modality, inputs))
        return torch.cat(parts) if parts else torch.empty(0, 0, dtype=torch.float32)
