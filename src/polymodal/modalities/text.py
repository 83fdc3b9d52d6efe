"""Text adapter: strings to byte-level token ids of shape (L,)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

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


class TextAdapter:
    """Turns strings into token tensors with a :class:`ByteTokenizer`.

    Args:
        cfg: tokenisation limits.
    """

    def __init__(self, cfg: TextConfig) -> None:
        self.cfg = cfg
        self.tokenizer = ByteTokenizer(cfg.max_length)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def from_text(self, text: str) -> Tensor:
        """Returns the token ids of ``text`` as a LongTensor of shape (L,)."""
        return self.tokenizer.encode(text)
