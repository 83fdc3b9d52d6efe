"""Evaluation metrics for classification, sentiment regression and retrieval.

Every function accepts numpy arrays, torch tensors or nested lists, and returns Python floats, numpy arrays or dicts
of floats. Results match scikit-learn (classification, weighted F1, per-query average precision) and the MMSA
toolkit's conventions for multimodal sentiment regression (CMU-MOSI / MOSEI: Acc-2, F1, Acc-7, MAE, Corr).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # np.ndarray | torch.Tensor | nested sequence of numbers


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = _to_numpy(pred).reshape(-1), _to_numpy(target).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in size: {p.shape[0]} vs {t.shape[0]}")
    return p, t


def _check_range(p: np.ndarray, t: np.ndarray, num_classes: int) -> None:
    if p.size:
        low, high = min(p.min(), t.min()), max(p.max(), t.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{low}, {high}]")


# ---------------------------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------------------------


def accuracy(pred: ArrayLike, target: ArrayLike) -> float:
    """Fraction of predictions equal to the target.

    Args:
        pred: predicted labels, (N,).
        target: true labels, (N,).

    Returns:
        Accuracy in [0, 1]; 0.0 for empty input.
    """
    p, t = _labels(pred, target)
    return float(np.mean(p == t)) if p.size else 0.0


def confusion_matrix(pred: ArrayLike, target: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) label pairs.

    Args:
        pred: predicted integer labels in [0, num_classes), (N,).
        target: true integer labels in [0, num_classes), (N,).
        num_classes: number of classes C.

    Returns:
        Integer matrix (C, C); entry ``[i, j]`` counts samples of true class i predicted as j (rows = true).
    """
    p, t = _labels(pred, target)
    p, t = p.astype(np.int64), t.astype(np.int64)
    _check_range(p, t, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _per_class_f1(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and true support for each label in the union of ``p`` and ``t``."""
    labels = np.union1d(p, t)
    f1 = np.empty(len(labels))
    support = np.empty(len(labels))
    for i, c in enumerate(labels):
        tp = np.sum((p == c) & (t == c))
        fp = np.sum((p == c) & (t != c))
        fn = np.sum((p != c) & (t == c))
        # 2TP + FP + FN > 0 for every label in the union, so no zero division can occur.
        f1[i] = 2 * tp / (2 * tp + fp + fn)
        support[i] = tp + fn
    return f1, support


def macro_f1(pred: ArrayLike, target: ArrayLike, num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``pred`` or ``target``.

    Matches ``sklearn.metrics.f1_score(target, pred, average="macro")`` with its default ``labels`` (the union):
    a class absent from both sides is excluded rather than counted as F1 = 0.

    Args:
        pred: predicted labels, (N,).
        target: true labels, (N,).
        num_classes: if given, labels must lie in [0, num_classes); it does not add absent classes.

    Returns:
        Macro F1 in [0, 1]; 0.0 for empty input.
    """
    p, t = _labels(pred, target)
    if num_classes is not None:
        _check_range(p, t, num_classes)
    if not p.size:
        return 0.0
    f1, _ = _per_class_f1(p, t)
    return float(f1.mean())


def weighted_f1(pred: ArrayLike, target: ArrayLike) -> float:
    """Per-class F1 averaged with weights equal to each class's true support.

    Matches ``sklearn.metrics.f1_score(target, pred, average="weighted")``.

    Args:
        pred: predicted labels, (N,).
        target: true labels, (N,).

    Returns:
        Weighted F1 in [0, 1]; 0.0 for empty input.
    """
    p, t = _labels(pred, target)
    if not p.size:
        return 0.0
    f1, support = _per_class_f1(p, t)
    return float(np.sum(f1 * support) / support.sum())


def classification_metrics(logits: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """Accuracy and macro F1 of the arg-max prediction.

    Args:
        logits: class scores, (N, C).
        target: true labels, (N,).

    Returns:
        ``{"accuracy": float, "macro_f1": float}``.
    """
    scores = _to_numpy(logits)
    if scores.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(scores.shape)}")
    pred = scores.argmax(axis=-1)
    return {"accuracy": accuracy(pred, target), "macro_f1": macro_f1(pred, target)}


# ---------------------------------------------------------------------------------------------------------------------
# Regression (multimodal sentiment, MMSA conventions)
# ---------------------------------------------------------------------------------------------------------------------


def _values(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = _labels(pred, target)
    return p.astype(np.float64), t.astype(np.float64)


def mae(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute error.

    Args:
        pred: predictions, (N,) or (N, 1).
        target: targets, (N,).

    Returns:
        Mean of ``|pred - target|``; 0.0 for empty input.
    """
    p, t = _values(pred, target)
    return float(np.mean(np.abs(p - t))) if p.size else 0.0


def pearson_r(pred: ArrayLike, target: ArrayLike) -> float:
    """Pearson correlation coefficient.

    Args:
        pred: predictions, (N,).
        target: targets, (N,).

    Returns:
        Correlation in [-1, 1]; 0.0 when either side is constant or there are fewer than two samples, so the result
        is never NaN (``scipy.stats.pearsonr`` returns NaN there).
    """
    p, t = _values(pred, target)
    if p.size < 2:
        return 0.0
    dp, dt = p - p.mean(), t - t.mean()
    denominator = np.sqrt(np.sum(dp * dp) * np.sum(dt * dt))
    if denominator == 0.0:
        return 0.0
    return float(np.clip(np.sum(dp * dt) / denominator, -1.0, 1.0))


def _binary(pred: ArrayLike, target: ArrayLike, exclude_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Binarised (pred, target) as MMSA does: ``>= 0`` is positive, or ``> 0`` after dropping zero targets."""
    p, t = _values(pred, target)
    if exclude_zero:
        keep = t != 0
        return p[keep] > 0, t[keep] > 0
    return p >= 0, t >= 0


def binary_accuracy(pred: ArrayLike, target: ArrayLike, exclude_zero: bool) -> float:
    """Accuracy of the sign of a sentiment score (MMSA's Has0_acc_2 / Non0_acc_2).

    Args:
        pred: predicted scores, (N,).
        target: true scores, (N,).
        exclude_zero: if False, positive means ``>= 0`` (non-negative vs negative); if True, samples with a zero
            target are dropped and positive means ``> 0``.

    Returns:
        Accuracy in [0, 1]; 0.0 when no sample is left.
    """
    return accuracy(*_binary(pred, target, exclude_zero))


def binary_f1(pred: ArrayLike, target: ArrayLike, exclude_zero: bool) -> float:
    """Support-weighted F1 of the sign of a sentiment score (MMSA's Has0_F1_score / Non0_F1_score).

    Args:
        pred: predicted scores, (N,).
        target: true scores, (N,).
        exclude_zero: as in :func:`binary_accuracy`.

    Returns:
        Weighted F1 in [0, 1], as ``f1_score(average="weighted")``; 0.0 when no sample is left.
    """
    return weighted_f1(*_binary(pred, target, exclude_zero))


def regression_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """The standard CMU-MOSI / MOSEI regression report, computed as MMSA does.

    Args:
        pred: predicted sentiment scores in roughly [-3, 3], (N,) or (N, 1).
        target: true scores, (N,).

    Returns:
        ``mae``, ``corr`` (Pearson), ``acc2`` and ``f1`` (non-negative vs negative), ``acc2_nonzero`` and
        ``f1_nonzero`` (positive vs negative, zero targets dropped) and ``acc7`` (accuracy after clipping both sides
        to [-3, 3] and rounding half to even, as ``np.round`` does).
    """
    p, t = _values(pred, target)
    return {
        "mae": mae(p, t),
        "corr": pearson_r(p, t),
        "acc2": binary_accuracy(p, t, exclude_zero=False),
        "acc2_nonzero": binary_accuracy(p, t, exclude_zero=True),
        "f1": binary_f1(p, t, exclude_zero=False),
        "f1_nonzero": binary_f1(p, t, exclude_zero=True),
        "acc7": accuracy(np.round(np.clip(p, -3.0, 3.0)), np.round(np.clip(t, -3.0, 3.0))),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------------------------------------------------


def _ranked_relevance(similarity: ArrayLike, relevant: ArrayLike) -> np.ndarray:
    """Relevance of gallery items in descending-similarity order per query, (Q, G); ties keep gallery order."""
    s, r = _to_numpy(similarity).astype(np.float64), _to_numpy(relevant).astype(bool)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(
            f"similarity and relevant must both have shape (Q, G), got {tuple(s.shape)} and {tuple(r.shape)}"
        )
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(r, order, axis=1)


def recall_at_k(similarity: ArrayLike, relevant: ArrayLike, k: int) -> float:
    """Fraction of queries with at least one relevant gallery item among their ``k`` most similar.

    Queries with no relevant item at all are skipped, as in :func:`mean_average_precision`. Ties in similarity are
    broken by gallery index.

    Args:
        similarity: query-gallery scores, higher is closer, (Q, G).
        relevant: True where the gallery item is relevant to the query, (Q, G). For paired retrieval use the identity.
        k: cut-off; values above G mean the whole gallery.

    Returns:
        Recall@k in [0, 1]; 0.0 when no query has a relevant item.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = _ranked_relevance(similarity, relevant)
    has_relevant = ranked.any(axis=1)
    if not has_relevant.any():
        return 0.0
    hits = ranked[has_relevant, :k].any(axis=1)
    return float(hits.mean())


def mean_average_precision(similarity: ArrayLike, relevant: ArrayLike) -> float:
    """Mean over queries of the average precision of the full ranking of the gallery.

    A query's AP is the mean, over its relevant items, of precision at each relevant item's rank. Queries with no
    relevant item are skipped. With distinct scores each AP equals ``sklearn.metrics.average_precision_score``; ties
    are broken by gallery index.

    Args:
        similarity: query-gallery scores, higher is closer, (Q, G).
        relevant: True where the gallery item is relevant to the query, (Q, G).

    Returns:
        mAP in [0, 1]; 0.0 when no query has a relevant item.
    """
    ranked = _ranked_relevance(similarity, relevant)
    ranked = ranked[ranked.any(axis=1)]
    if not ranked.size:
        return 0.0
    hits = np.cumsum(ranked, axis=1)
    precision = hits / np.arange(1, ranked.shape[1] + 1)
    ap = np.sum(precision * ranked, axis=1) / ranked.sum(axis=1)
    return float(ap.mean())


def retrieval_metrics(
    similarity: ArrayLike, query_labels: ArrayLike, gallery_labels: ArrayLike, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k and mAP for label-based retrieval, where a gallery item is relevant if it shares the query's label.

    Args:
        similarity: query-gallery scores, higher is closer, (Q, G).
        query_labels: label of each query, (Q,).
        gallery_labels: label of each gallery item, (G,).
        ks: cut-offs for recall.

    Returns:
        ``{"R@1": ..., "R@5": ..., "R@10": ..., "mAP": ...}`` (one ``R@k`` per entry of ``ks``).
    """
    q, g = _to_numpy(query_labels).reshape(-1), _to_numpy(gallery_labels).reshape(-1)
    relevant = q[:, None] == g[None, :]
    out = {f"R@{k}": recall_at_k(similarity, relevant, k) for k in ks}
    out["mAP"] = mean_average_precision(similarity, relevant)
    return out


def cross_modal_retrieval(
    embedded: Mapping[str, ArrayLike], targets: Mapping[str, ArrayLike], pairs: list[tuple[str, str]]
) -> dict[str, float]:
    """Label-based retrieval in both directions of every pair: ``{a}_to_{b}_r1/r5/r10/map`` and ``r1`` (their mean
    Recall@1).

    Args:
        embedded: modality -> (N_m, D) L2-normalised embeddings in one space.
        targets: modality -> (N_m,) labels; a gallery item is relevant when its label equals the query's.
        pairs: unordered modality pairs; both directions are scored.
    """
    metrics: dict[str, float] = {}
    for a, b in pairs:
        for query, gallery in ((a, b), (b, a)):
            similarity = embedded[query] @ embedded[gallery].T
            scores = retrieval_metrics(similarity, targets[query], targets[gallery])
            for key, value in scores.items():
                metrics[f"{query}_to_{gallery}_{key.replace('R@', 'r').lower()}"] = value
    r1 = [v for k, v in metrics.items() if k.endswith("_r1")]
    metrics["r1"] = sum(r1) / len(r1)
    return metrics
