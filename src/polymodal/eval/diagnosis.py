"""Modality laziness diagnosis: is each modality alone worth more than chance and than a raw nearest neighbour?

A fused model can score well while one easy modality does all the work; the others then score near chance alone,
and the model fails as soon as that modality is missing. After training, each modality's score alone is compared
with chance and with a cheap unimodal reference that needs no training: a 1-nearest-neighbour on the adapter's raw
output (pixels, log-mel, a bag of bytes, mean features) from the training split to the scored split; images and
spectrograms larger than ``MAX_REFERENCE_DIM`` values are average-pooled first. A modality clearly below its reference
is reported in one line with the override that addresses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polymodal.data.vocab import is_sequence, modality_kind

# Samples used for the 1-NN reference at most (train, scored split): it must stay cheap next to training.
MAX_REFERENCE_TRAIN = 5000
MAX_REFERENCE_EVAL = 2000
# Values per sample at most in the 1-NN (AV-MNIST's 112 x 112 spectrograms would cost more than the training).
MAX_REFERENCE_DIM = 2048
# A modality alone this far (score units) below its reference, or this close to chance, contributes little.
LAZY_MARGIN = 0.05


def _vector(value: Tensor, name: str) -> Tensor:
    """One sample's raw representation for the 1-NN: flattened tensor, bag of byte tokens, or mean feature."""
    if modality_kind(name) == "text":
        return torch.bincount(value.long().flatten(), minlength=258)[2:].float()
    if is_sequence(name):
        return value.float().reshape(value.shape[0], -1).mean(0) if value.numel() else value.new_zeros(0)
    return _pooled(value.float()).flatten()


def _pooled(value: Tensor) -> Tensor:
    """A (C, H, W) tensor of more than ``MAX_REFERENCE_DIM`` values average-pooled by the smallest integer factor
    that leaves at most that many; anything else as it is."""
    if value.ndim != 3 or value.numel() <= MAX_REFERENCE_DIM:
        return value
    channels, height, width = value.shape
    factor = 2
    while channels * math.ceil(height / factor) * math.ceil(width / factor) > MAX_REFERENCE_DIM:
        factor += 1
    return torch.nn.functional.adaptive_avg_pool2d(value, (math.ceil(height / factor), math.ceil(width / factor)))


def _raw(dataset: Any, names: Sequence[str], limit: int) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor]]]:
    """One pass over the first ``limit`` samples: their (N,) targets, and for each modality the (n, D) raw vectors
    and (n,) targets of the samples that have it (modalities whose vectors differ in size are left out)."""
    targets: list[Tensor] = []
    rows: dict[str, tuple[list[Tensor], list[Tensor]]] = {m: ([], []) for m in names}
    for i in range(min(len(dataset), limit)):
        sample = dataset[i]
        target = torch.as_tensor(sample["target"]).float()
        targets.append(target)
        for m in names:
            value = sample["inputs"].get(m)
            if value is not None:
                rows[m][0].append(_vector(value, m))
                rows[m][1].append(target)
    vectors = {
        m: (torch.stack(v), torch.stack(t)) for m, (v, t) in rows.items() if v and len({r.shape for r in v}) == 1
    }
    return torch.stack(targets), vectors


def nearest_neighbour_scores(train: Any, test: Any, modalities: Sequence[str], task: str) -> dict[str, float]:
    """Each modality's score (accuracy, or MAE for regression) of a cosine 1-NN from ``train`` to ``test``.

    Vectors are centred on the training mean and L2-normalised. The first ``MAX_REFERENCE_TRAIN`` training and
    ``MAX_REFERENCE_EVAL`` scored samples are used (a fixed choice).
    """
    return _nearest_neighbour(
        _raw(train, modalities, MAX_REFERENCE_TRAIN)[1], _raw(test, modalities, MAX_REFERENCE_EVAL)[1], task
    )


def _nearest_neighbour(
    train: Mapping[str, tuple[Tensor, Tensor]], test: Mapping[str, tuple[Tensor, Tensor]], task: str
) -> dict[str, float]:
    scores = {}
    for m, fitted in train.items():
        scored = test.get(m)
        if scored is None or fitted[0].shape[1] != scored[0].shape[1]:
            continue
        mean = fitted[0].mean(0, keepdim=True)
        a = torch.nn.functional.normalize(fitted[0] - mean, dim=1)
        b = torch.nn.functional.normalize(scored[0] - mean, dim=1)
        nearest = (b @ a.T).argmax(1)
        predicted = fitted[1][nearest]
        if task == "classification":
            scores[m] = float((predicted == scored[1]).float().mean())
        else:
            scores[m] = float((predicted - scored[1]).abs().mean())
    return scores


def chance_score(train_targets: Tensor, test_targets: Tensor, task: str) -> float:
    """The score of a constant prediction: the most frequent training class, or the training mean (MAE)."""
    if task == "classification":
        majority = torch.mode(train_targets.long()).values
        return float((test_targets.long() == majority).float().mean())
    return float((test_targets.float() - train_targets.float().mean()).abs().mean())


def diagnose(
    alone: Mapping[str, float],
    chance: float,
    reference: Mapping[str, float],
    task: str,
    remedy: str,
) -> dict[str, Any]:
    """Flags the modalities that contribute little on their own.

    A modality is lazy when its score alone is within ``LAZY_MARGIN`` of chance, or ``LAZY_MARGIN`` worse than its
    1-NN reference (for regression, MAE: higher is worse).

    Args:
        alone: modality -> score with only that modality (the run's ``per_modality``).
        chance: the constant predictor's score.
        reference: modality -> 1-NN score (modalities without one are judged against chance only).
        task: ``classification`` or ``regression``.
        remedy: the override that addresses laziness for this run (printed with each finding).

    Returns:
        ``{"chance": c, "modalities": {m: {"alone", "reference", "lazy"}}, "findings": [one line per lazy modality]}``
    """
    better = (lambda a, b: a - b) if task == "classification" else (lambda a, b: b - a)
    name = "accuracy" if task == "classification" else "MAE"
    report: dict[str, Any] = {"chance": round(chance, 4), "modalities": {}, "findings": []}
    for m, score in alone.items():
        ref = reference.get(m)
        near_chance = better(score, chance) < LAZY_MARGIN
        below_ref = ref is not None and better(score, ref) < -LAZY_MARGIN
        report["modalities"][m] = {
            "alone": round(score, 4),
            "reference": None if ref is None else round(ref, 4),
            "lazy": bool(near_chance or below_ref),
        }
        if near_chance or below_ref:
            against = f"near chance ({chance:.2f})" if near_chance else f"below a raw 1-nearest-neighbour ({ref:.2f})"
            report["findings"].append(
                f"{m} contributes little: alone its {name} is {score:.2f}, {against}; the model leans on the other "
                f"modalities (modality laziness). Try: {remedy}"
            )
    return report


def laziness_remedy(strategy: Mapping[str, Any], trainer: Any) -> str:
    """The concrete override that addresses laziness for a run with this strategy and trainer config."""
    steps = []
    if strategy.get("name") == "joint" and not strategy.get("unimodal_weight"):
        steps.append("strategy.unimodal_weight=1.0")
    if strategy.get("name") not in ("joint", "alternating"):
        steps.append("the manifest-joint recipe's strategy (strategy.name=joint strategy.unimodal_weight=1.0)")
    if not str(trainer.selection_metric).startswith("robust"):
        steps.append("trainer.selection_metric=robust_accuracy")
    if not steps:
        steps.append(
            f"trainer.epochs={2 * trainer.epochs} (more training) or data.augment='{{image: {{}}, audio: {{}}}}'"
        )
    return " ".join(steps)


def laziness_report(
    train: Any, test: Any, alone: Mapping[str, Mapping[str, float]], task: str, remedy: str
) -> dict[str, Any]:
    """:func:`diagnose` of a run's each-alone scores (``metrics.json``'s ``per_modality``) on ``test``, with chance
    and the 1-NN reference computed from ``train``."""
    metric = "accuracy" if task == "classification" else "mae"
    scores = {m: v[metric] for m, v in alone.items()}
    train_targets, train_vectors = _raw(train, list(scores), MAX_REFERENCE_TRAIN)
    test_targets, test_vectors = _raw(test, list(scores), MAX_REFERENCE_EVAL)
    chance = chance_score(train_targets, test_targets, task)
    reference = _nearest_neighbour(train_vectors, test_vectors, task)
    return diagnose(scores, chance, reference, task, remedy)
