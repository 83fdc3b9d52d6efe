"""Text adapter: strings to byte-level token ids of shape (L,)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from polymodal.modalities.adapters import ADAPTERS
from polymodal.modalities.huggingface import load_tokenizer
from polymodal.modalities.settings import TextConfig


class ByteTokenizer:
    """Byte-level UTF-8 tokenizer: id = byte + 2, with 0 for padding and 1 for empty/unknown.

    Bytes need no vocabulary file and cover every language, which suits short multilingual phrases.

    Args:
        max_length: tokens kept per text.
    """

    vocab_size: int = 258
    pad_id: int = 0
    unknown_id: int = 1

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def encode(self, text: str) -> Tensor:
        """Returns a LongTensor of shape (L,), 1 <= L <= max_length; an empty text becomes ``[1]``."""
        data = text.encode("utf-8")[: self.max_length]
        if not data:
            return torch.tensor([self.unknown_id], dtype=torch.long)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + 2

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """Inverse of :meth:`encode`; ids 0 and 1 are skipped and a character cut by truncation is dropped."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if any(not 0 <= v < self.vocab_size for v in values):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {values}")
        return bytes(v - 2 for v in values if v >= 2).decode("utf-8", errors="ignore")


class PretrainedTokenizer:
    """A Hugging Face tokenizer from a local model directory, with the :class:`ByteTokenizer` interface.

    Args:
        path: the model directory (``save_pretrained`` layout of the tokenizer).
        max_length: tokens kept per text, special tokens included.

    Raises:
        ConfigError: the directory is missing, holds no tokenizer, or ``transformers`` is not installed.
    """

    def __init__(self, path: str, max_length: int) -> None:
        self.tokenizer = load_tokenizer(path)
        self.max_length = max_length
        self.vocab_size = len(self.tokenizer)

    def encode(self, text: str) -> Tensor:
        """Returns a LongTensor of shape (L,), 1 <= L <= max_length, with the tokenizer's special tokens."""
        ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return torch.tensor(ids or [self.tokenizer.unk_token_id or 0], dtype=torch.long)


@ADAPTERS.register("text", TextConfig)
class TextAdapter:
    """Turns strings into token tensors with a :class:`ByteTokenizer`, or the model's tokenizer (``cfg.tokenizer``).

    Args:
        cfg: tokenisation settings.
    """

    # None: it reads the string itself (a CSV manifest cell without a known file suffix).
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TextConfig) -> None:
        self.cfg = cfg
        self.tokenizer: ByteTokenizer | PretrainedTokenizer = (
            ByteTokenizer(cfg.max_length)
            if cfg.tokenizer is None
            else PretrainedTokenizer(cfg.tokenizer, cfg.max_length)
        )

    def read(self, item: str | Path) -> Tensor:
        """One text: the string itself (a CSV manifest cell, an item to ``embed``)."""
        return self.from_text(str(item))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def from_text(self, text: str) -> Tensor:
        """Returns the token ids of ``text`` as a LongTensor of shape (L,)."""
        return self.tokenizer.encode(text)
