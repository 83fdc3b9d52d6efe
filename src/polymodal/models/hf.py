"""The ``hf`` encoder: any Hugging Face ``transformers`` model as the encoder of one modality.

The model comes from a local ``save_pretrained`` directory (``path``) or is built with random weights from
``config.json``-style settings (``config``). Its own preprocessing is done by the modality adapters: text through the
model's tokenizer (``data.text.tokenizer``), images resized and normalised as its image processor says
(``data.image.processor``), audio as the raw waveform its feature extractor asks for (``data.audio.processor``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from polymodal.errors import ConfigError
from polymodal.modalities.huggingface import load_model, model_from_config
from polymodal.models.encoders import ENCODERS
from polymodal.registry import ComponentConfig

MODALITIES = ("image", "audio", "text")
# transformers' task tables that name the model types of each modality (a type may sit in several, e.g. perceiver).
_FAMILIES = {
    "image": ("MODEL_FOR_IMAGE_MAPPING_NAMES", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
    "audio": ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "MODEL_FOR_CTC_MAPPING_NAMES"),
    "text": ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
}


class HFConfig(ComponentConfig):
    """Settings of the ``hf`` encoder (see :class:`HFEncoder`); exactly one of ``path`` and ``config``."""

    path: str | None = None
    config: dict[str, Any] | None = None
    pooling: Literal["cls", "mean", "pooler"] = "mean"
    freeze: bool | int = False
    lr_scale: float = Field(1.0, gt=0)
    out_dim: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> HFConfig:
        if (self.path is None) == (self.config is None):
            raise ValueError("give exactly one of path (a save_pretrained directory) and config (random weights)")
        if not isinstance(self.freeze, bool) and self.freeze < 1:
            raise ValueError("freeze: true, false, or the number of last layers that train (at least 1)")
        return self


def model_modalities(model_type: str) -> list[str]:
    """The modalities whose ``transformers`` task tables list ``model_type`` (e.g. ``["text"]`` for ``bert``)."""
    from transformers.models.auto import modeling_auto

    return [m for m, tables in _FAMILIES.items() if any(model_type in getattr(modeling_auto, t, {}) for t in tables)]


def _check_family(modality: str, where: str) -> Any:
    def check(config: Any) -> None:
        families = model_modalities(config.model_type)
        if modality not in families:
            kind = " or ".join(families) or "none of image, audio, text alone"
            raise ConfigError(f"{where}: a {config.model_type!r} model encodes {kind}, not {modality}")

    return check


def _layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of transformer blocks: its ModuleList of ``num_hidden_layers`` entries."""
    count = getattr(model.config, "num_hidden_layers", None)
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == count]
    return stacks[0] if stacks else None


@ENCODERS.register("hf", HFConfig)
class HFEncoder(nn.Module):
    """A Hugging Face ``transformers`` base model as a (B, ...) -> (B, D) encoder.

    Inputs come from polymodal's adapters: text as (B, L) token ids of the model's tokenizer with lengths, images as
    (B, C, H, W) ``pixel_values``, audio as (B, 1, T) raw waveforms (``input_values``).

    Args:
        input_shape: the adapter's shape of one sample: () for tokens, (C, H, W) for images, (1, T) for waveforms.
        kind: the modality kind of the input it encodes (``image`` for ``image:front``; the builder passes it); the
            model must be of it.
        path: a local ``save_pretrained`` directory (pretrained weights).
        config: ``config.json``-style settings with a ``model_type`` (random weights), instead of ``path``.
        pooling: ``cls`` (the first position), ``mean`` (over valid positions) or ``pooler`` (the model's pooler).
        freeze: ``True`` freezes the model (kept in eval mode), ``False`` trains it all, an int n trains only the last
            n layers and what follows them (final norm, pooler).
        lr_scale: factor on the optimizer's learning rate for this encoder's parameters (a parameter group).
        out_dim: width of a linear projection of the pooled feature; ``None`` keeps the model's hidden size.

    Raises:
        ConfigError: a missing directory or file, an unknown architecture, a model of another modality, inputs of
            the wrong kind or shape, or a pooling or freeze setting the model cannot honour.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        kind: str,
        path: str | None,
        config: dict[str, Any] | None,
        pooling: str,
        freeze: bool | int,
        lr_scale: float,
        out_dim: int | None,
        **_: object,
    ) -> None:
        super().__init__()
        if kind not in MODALITIES:
            raise ConfigError(f"model.encoders.{kind}: the hf encoder takes {', '.join(MODALITIES)} inputs")
        where = path if path is not None else f"model.encoders.{kind}"
        if path is not None:
            self.model = load_model(path, f"{kind} model", check=_check_family(kind, where))
        else:
            self.model = model_from_config(dict(config or {}), f"model.encoders.{kind}")
            _check_family(kind, where)(self.model.config)
        self.modality = kind
        self.pooling = pooling
        self.lr_scale = lr_scale
        self._check_inputs(tuple(input_shape), where)
        if pooling == "pooler" and getattr(self.model, "pooler", None) is None:
            raise ConfigError(f"{where}: the {self.model.config.model_type!r} model has no pooler (use cls or mean)")
        if pooling != "pooler" and getattr(self.model, "pooler", None) is not None:
            # An unused pooler would hold parameters without gradients, which DDP refuses.
            self.model.pooler = None
        self.frozen = freeze is True
        self._freeze(freeze, where)
        hidden = int(self.model.config.hidden_size)
        self.proj = nn.Linear(hidden, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or hidden

    def _check_inputs(self, shape: tuple[int, ...], where: str) -> None:
        config = self.model.config
        if self.modality == "text":
            self.max_length = int(getattr(config, "max_position_embeddings", 0)) or None
            self.vocab_size = int(config.vocab_size)
            return
        if self.modality == "audio":
            if len(shape) != 2:
                raise ConfigError(f"{where}: takes raw waveforms: set data.audio.features=waveform (not log-mels)")
            return
        size = getattr(config, "image_size", None)
        channels = int(getattr(config, "num_channels", shape[0]))
        wanted = (channels, size, size) if size else (channels,)
        if len(shape) != 3 or shape[: len(wanted)] != wanted:
            raise ConfigError(
                f"{where}: takes {'x'.join(map(str, wanted))} images but the data gives {'x'.join(map(str, shape))} "
                "(set data.image.processor to the model directory)"
            )

    def _freeze(self, freeze: bool | int, where: str) -> None:
        if freeze is False:
            return
        self.model.requires_grad_(False)
        if freeze is True:
            self.model.eval()
            return
        stack = _layer_stack(self.model)
        if stack is None or freeze > len(stack):
            layers = 0 if stack is None else len(stack)
            raise ConfigError(f"{where}: freeze={freeze} but the model has {layers} layers to train")
        # Parameters registered after the stack's last trained layer run after it (final norm, pooler).
        trained = {id(p) for layer in stack[len(stack) - freeze :] for p in layer.parameters()}
        first = next(i for i, p in enumerate(self.model.parameters()) if id(p) in trained)
        for p in list(self.model.parameters())[first:]:
            p.requires_grad_(True)

    def train(self, mode: bool = True) -> HFEncoder:
        """Like ``nn.Module.train``, but a frozen model stays in eval mode (no dropout: fixed features)."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, L) token ids with lengths (B,), (B, C, H, W) images or (B, 1, T) waveforms -> (B, D)."""
        mask = None
        if self.modality == "text":
            # Text noise and augmentation draw random byte-token ids (up to 257), which may lie past a small
            # vocabulary: folded into it, they stay random tokens.
            x = x[:, : self.max_length].long() % self.vocab_size
            steps = x.shape[1]
            if lengths is None:
                lengths = torch.full((x.shape[0],), steps, device=x.device)
            # Clamp to 1 so a sample whose text is absent (length 0) still attends somewhere and stays finite.
            mask = (torch.arange(steps, device=x.device)[None, :] < lengths.clamp(1, steps)[:, None]).long()
            output = self.model(input_ids=x, attention_mask=mask)
        elif self.modality == "image":
            output = self.model(pixel_values=x.float())
        else:
            output = self.model(input_values=x.float().flatten(1))
        return self.proj(self._pool(output, mask))

    def _pool(self, output: Any, mask: Tensor | None) -> Tensor:
        if self.pooling == "pooler":
            return output.pooler_output.flatten(1)
        hidden = output.last_hidden_state
        if hidden.dim() == 4:  # convolutional models: (B, C, H, W) feature maps -> (B, H * W, C)
            hidden = hidden.flatten(2).transpose(1, 2)
        if self.pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(1)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)
