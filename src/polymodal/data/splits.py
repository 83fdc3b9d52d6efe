"""Deterministic index splits: a validation split carved from train, and a random subset of train."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch

from polymodal.errors import ConfigError, DataError


def split_indices(
    n: int, val_fraction: float, seed: int, targets: Sequence[Hashable] | torch.Tensor | None = None
) -> tuple[list[int], list[int]]:
    """Splits ``range(n)`` into train and validation indices, the same way for the same arguments.

    With ``targets`` (class labels, classification only) the split is stratified: each class gives about
    ``val_fraction`` of its samples to validation and always keeps at least one for training.

    Args:
        n: number of samples.
        val_fraction: share of samples that go to validation, in (0, 1).
        seed: seed of the shuffle.
        targets: optional class label per sample, length ``n``; pass ``None`` for regression.

    Returns:
        ``(train, val)``: disjoint sorted index lists whose union is ``range(n)``; ``val`` is never empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: must be between 0 and 1 (exclusive), got {val_fraction}")
    if n < 2:
        raise DataError(f"cannot carve a validation split from {n} training sample(s); need at least 2")
    rng = np.random.default_rng(seed)
    if targets is None:
        order = rng.permutation(n).tolist()
        n_val = min(n - 1, max(1, round(n * val_fraction)))
        return sorted(order[n_val:]), sorted(order[:n_val])

    labels = targets.tolist() if isinstance(targets, torch.Tensor) else list(targets)
    if len(labels) != n:
        raise ValueError(f"split_indices: got {len(labels)} targets for {n} samples")
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    classes = sorted(groups, key=str)
    counts = _apportion([len(groups[c]) for c in classes], val_fraction)
    if sum(counts) == 0:
        raise DataError(
            f"cannot carve a stratified validation split: every one of the {len(classes)} classes has a single "
            "sample, which must stay in training"
        )
    train: list[int] = []
    val: list[int] = []
    for c, k in zip(classes, counts, strict=True):
        members = [groups[c][j] for j in rng.permutation(len(groups[c]))]
        val.extend(members[:k])
        train.extend(members[k:])
    return sorted(train), sorted(val)


def _apportion(sizes: list[int], fraction: float) -> list[int]:
    """Largest-remainder allocation of ``round(sum * fraction)`` (at least 1) over groups, each keeping one."""
    caps = [s - 1 for s in sizes]
    total = min(sum(caps), max(1, round(sum(sizes) * fraction)))
    ideal = [s * fraction for s in sizes]
    counts = [min(int(x), cap) for x, cap in zip(ideal, caps, strict=True)]
    # Hand out what flooring left over to the largest remainders first; ties go to the earlier class.
    order = sorted(range(len(sizes)), key=lambda i: (-(ideal[i] - int(ideal[i])), i))
    while sum(counts) < total:
        grown = False
        for i in order:
            if sum(counts) >= total:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                grown = True
        if not grown:
            break
    return counts


def subset_indices(n: int, max_samples: int, seed: int) -> list[int]:
    """Picks ``max_samples`` of ``range(n)`` at random (all of them if ``n <= max_samples``), deterministically.

    Args:
        n: number of samples.
        max_samples: how many to keep, at least 1.
        seed: seed of the draw.

    Returns:
        Sorted list of distinct indices.
    """
    if max_samples < 1:
        raise ConfigError(f"data.max_train_samples: must be at least 1, got {max_samples}")
    if max_samples >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n, size=max_samples, replace=False).tolist())


def part_indices(n: int, k: int, parts: int) -> list[int]:
    """The ``k``-th of ``parts`` disjoint, near-equal parts of ``range(n)`` after one fixed shuffle (seed 0).

    The permutation does not depend on any run seed, so runs given different parts never share an index.

    Args:
        n: number of samples.
        k: which part, ``0 <= k < parts``.
        parts: how many parts.

    Returns:
        Sorted list of indices.
    """
    if not 0 <= k < parts:
        raise ConfigError(f"data.train_part: expected 0 <= k < n, got [{k}, {parts}]")
    order = np.random.default_rng(0).permutation(n)
    return sorted(order[k::parts].tolist())
