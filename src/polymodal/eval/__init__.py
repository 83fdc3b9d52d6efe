"""Evaluation: metrics, retrieval scores, robustness probes and plots.

What belongs here: functions that turn model outputs, targets, similarity matrices and training logs into numbers and
figures, and probes that transform collated batches (drop, isolate or corrupt a modality) before calling a
``predict(batch)`` callable, or score those subsets from one encoder pass of a ``Predictor`` (``SubsetScorer``).
Everything here works on tensors, arrays and batches, never on a model class.

What does not: models, losses and training steps. ``eval/`` never imports ``polymodal.models``, ``polymodal.training``
or ``polymodal.strategies``; the caller wraps its model in a ``predict`` function or a ``Predictor`` (a strategy is
one) instead. Loss functions used for
training live in ``objectives/``, even when they resemble a metric.

The torch-free ``EvalConfig`` (the recipe's ``eval`` section) and the metric table (:mod:`polymodal.eval.selection`)
import nothing heavy; the names below are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.eval.metrics import (
        accuracy,
        binary_accuracy,
        binary_f1,
        classification_metrics,
        confusion_matrix,
        macro_f1,
        mae,
        mean_average_precision,
        pearson_r,
        recall_at_k,
        regression_metrics,
        retrieval_metrics,
        weighted_f1,
    )
    from polymodal.eval.plots import (
        plot_bars,
        plot_confusion_matrix,
        plot_modality_accuracy,
        plot_noise_curves,
        plot_training_curves,
    )
    from polymodal.eval.robustness import (
        Predictor,
        SubsetScorer,
        add_noise,
        collect,
        drop_modalities,
        keep_only,
        missing_modality_scores,
        noise_curves,
        single_modality_scores,
    )

_LAZY = {
    "accuracy": "metrics",
    "binary_accuracy": "metrics",
    "binary_f1": "metrics",
    "classification_metrics": "metrics",
    "confusion_matrix": "metrics",
    "macro_f1": "metrics",
    "mae": "metrics",
    "mean_average_precision": "metrics",
    "pearson_r": "metrics",
    "recall_at_k": "metrics",
    "regression_metrics": "metrics",
    "retrieval_metrics": "metrics",
    "weighted_f1": "metrics",
    "plot_bars": "plots",
    "plot_confusion_matrix": "plots",
    "plot_modality_accuracy": "plots",
    "plot_noise_curves": "plots",
    "plot_training_curves": "plots",
    "Predictor": "robustness",
    "SubsetScorer": "robustness",
    "add_noise": "robustness",
    "collect": "robustness",
    "drop_modalities": "robustness",
    "keep_only": "robustness",
    "missing_modality_scores": "robustness",
    "noise_curves": "robustness",
    "single_modality_scores": "robustness",
}

__all__ = [
    "Predictor",
    "SubsetScorer",
    "accuracy",
    "add_noise",
    "binary_accuracy",
    "binary_f1",
    "classification_metrics",
    "collect",
    "confusion_matrix",
    "drop_modalities",
    "keep_only",
    "macro_f1",
    "mae",
    "mean_average_precision",
    "missing_modality_scores",
    "noise_curves",
    "pearson_r",
    "plot_bars",
    "plot_confusion_matrix",
    "plot_modality_accuracy",
    "plot_noise_curves",
    "plot_training_curves",
    "recall_at_k",
    "regression_metrics",
    "retrieval_metrics",
    "single_modality_scores",
    "weighted_f1",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
