"""Evaluation: metrics, retrieval scores, robustness probes and plots.

What belongs here: functions that turn model outputs, targets, similarity matrices and training logs into numbers and
figures, and probes that transform collated batches (drop, isolate or corrupt a modality) before calling a
``predict(batch)`` callable, or score those subsets from one encoder pass of a ``Predictor`` (``SubsetScorer``).
Everything here works on tensors, arrays and batches, never on a model class.

What does not: models, losses and training steps. ``eval/`` never imports ``polymodal.models``, ``polymodal.training``
or ``polymodal.strategies``; the caller wraps its model in a ``predict`` function or a ``Predictor`` (a strategy is
one) instead. Loss functions used for
training live in ``objectives/``, even when they resemble a metric.
"""

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
