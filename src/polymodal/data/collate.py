"""Collate samples into a batch, padding sequences and filling missing modalities.

A sample is ``{"inputs": {modality: Tensor | None}, "target": Tensor, "index": int}``; ``None`` marks a missing
modality. A batch is::

    {"inputs":  {modality: Tensor(B, ...)},   # zeros where missing
     "present": {modality: BoolTensor(B)},
     "lengths": {modality: LongTensor(B)},    # sequence modalities only (text, features)
     "target":  Tensor(B, ...),
     "index":   LongTensor(B)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polymodal.data.vocab import is_sequence

Sample = Mapping[str, Any]
Batch = dict[str, Any]


def pad_sequences(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pads tensors of shape (L_i, ...) with zeros to (B, L_max, ...) and returns them with their lengths."""
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long)
    out = seqs[0].new_zeros((len(seqs), int(lengths.max().clamp(min=1)), *seqs[0].shape[1:]))
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


class Collate:
    """Callable collate function.

    Args:
        shapes: per-modality shape of one sample, used only when every sample of a batch lacks that modality
            (for sequences, the shape of one step, e.g. ``(D,)`` for features or ``()`` for tokens).
        dtypes: per-modality dtype for the same case (default float32).
    """

    def __init__(
        self, shapes: Mapping[str, tuple[int, ...]] | None = None, dtypes: Mapping[str, torch.dtype] | None = None
    ) -> None:
        self.shapes = dict(shapes or {})
        self.dtypes = dict(dtypes or {})

    def _placeholder(self, modality: str) -> Tensor:
        if modality not in self.shapes:
            raise ValueError(f"every sample lacks {modality!r} and Collate was given no shape for it")
        shape = self.shapes[modality]
        if is_sequence(modality):
            shape = (1, *shape)
        return torch.zeros(shape, dtype=self.dtypes.get(modality, torch.float32))

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        modalities: list[str] = []
        for s in samples:
            modalities.extend(m for m in s["inputs"] if m not in modalities)
        batch: Batch = {"inputs": {}, "present": {}, "lengths": {}}
        for m in modalities:
            values = [s["inputs"].get(m) for s in samples]
            present = torch.tensor([v is not None for v in values])
            example = next((v for v in values if v is not None), None)
            if example is None:
                example = self._placeholder(m)
            if is_sequence(m):
                empty = example.new_zeros((0, *example.shape[1:]))
                padded, lengths = pad_sequences([v if v is not None else empty for v in values])
                batch["inputs"][m], batch["lengths"][m] = padded, lengths
            else:
                zeros = torch.zeros_like(example)
                batch["inputs"][m] = torch.stack([v if v is not None else zeros for v in values])
            batch["present"][m] = present
        batch["target"] = torch.stack([torch.as_tensor(s["target"]) for s in samples])
        batch["index"] = torch.tensor([int(s["index"]) for s in samples], dtype=torch.long)
        return batch


def move_to(batch: Any, device: torch.device | str) -> Any:
    """Returns a copy of a (nested dict / list / tuple of) tensors with every tensor on ``device``.

    Args:
        batch: a tensor, or a dict, list or tuple nesting tensors; other values are returned as they are.
        device: target device.

    Returns:
        The same structure with tensors moved.
    """
    if isinstance(batch, Tensor):
        # non_blocking pairs with pinned memory on CUDA; on CPU it is a plain copy.
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device) for value in batch)
    return batch
