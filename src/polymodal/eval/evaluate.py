"""A run's evaluation report: main metrics, per-modality and missing-modality scores, noise curves and plots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polymodal.eval.metrics import accuracy, classification_metrics, confusion_matrix, mae, regression_metrics
from polymodal.eval.plots import plot_bars, plot_confusion_matrix, plot_noise_curves
from polymodal.eval.robustness import Predictor, SubsetScorer, collect

Predict = Callable[[dict[str, Any]], Tensor]


def task_metrics(outputs: Tensor, targets: Tensor, task: str) -> dict[str, float]:
    """Main metrics of a task: accuracy and macro-F1 for classification, MMSA-style metrics for regression."""
    if task == "classification":
        return classification_metrics(outputs, targets)
    return regression_metrics(outputs.reshape(-1), targets)


def task_score(task: str) -> tuple[str, Callable[[Tensor, Tensor], float]]:
    """The single score used for per-modality and robustness reports, with its name."""
    if task == "classification":
        return "accuracy", lambda o, t: accuracy(o.argmax(-1), t)
    return "mae", lambda o, t: mae(o.reshape(-1), t)


def evaluate_split(
    predict: Predict, loader: Any, task: str, device: torch.device | str = "cpu", desc: str | None = None
) -> dict[str, float]:
    """Main metrics of ``predict`` over a loader (``desc``: what the pass is, shown with its progress)."""
    outputs, targets = collect(predict, loader, device=device, desc=desc)
    return task_metrics(outputs, targets, task)


def validation_metrics(
    predictor: Predictor,
    loader: Any,
    task: str,
    modalities: Sequence[str],
    per_modality: bool,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> dict[str, float]:
    """Main metrics plus, when ``per_modality``, each modality's score alone (``<modality>_alone_<score>``).

    Logged every epoch, the per-modality scores make modality laziness visible: a modality the fused model ignores
    stays near chance alone while the fused score climbs. Always with them comes ``robust_<score>``, the mean of
    the fused score and every modality's score alone (the fused score when those are not computed): a selection
    metric (``trainer.selection_metric: robust_accuracy``) that does not stop at the first epoch where one easy
    modality already makes the fused score perfect. The scores alone come from the fused pass's features when the
    predictor splits into them (see :class:`SubsetScorer`); ``show_progress`` shows each pass's progress.
    """
    subsets = per_modality and len(modalities) > 1
    scorer = SubsetScorer(predictor, loader, device, "validation" if show_progress else None, subsets)
    metrics = task_metrics(scorer.outputs, scorer.targets, task)
    name, score = task_score(task)
    single = scorer.alone(modalities, score) if subsets else {}
    metrics.update({f"{m}_alone_{name}": v for m, v in single.items()})
    metrics[f"robust_{name}"] = (metrics[name] + sum(single.values())) / (1 + len(single))
    return metrics


def main_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The main metrics of a :func:`validation_metrics` result, without its per-modality and robust scores."""
    return {k: v for k, v in metrics.items() if "_alone_" not in k and not k.startswith("robust_")}


def full_report(
    predictor: Predictor,
    loader: Any,
    task: str,
    modalities: Sequence[str],
    class_names: Sequence[str] | None,
    noise_levels: Sequence[float],
    seed: int,
    device: torch.device | str,
    plots_dir: Path | None,
    run_name: str | None = None,
    split: str = "test",
    show_progress: bool = False,
) -> dict[str, Any]:
    """Everything ``metrics.json`` reports about one split, plus PNG plots when ``plots_dir`` is given.

    The split is scored with all modalities, each modality alone, each one removed (with three or more modalities)
    and each noise level on each modality: from one encoder pass plus one pass of the noised modality per noise
    level when the predictor splits into per-modality features, else in one pass of ``predict`` each (see
    :class:`SubsetScorer`); ``show_progress`` shows each pass's progress by name. The plots' titles name
    ``run_name`` and ``split``; accuracy plots draw chance level (``1 / classes``).

    Returns:
        ``{"metrics": {...}, "per_modality": {m: {score: v}}, "missing": {m: {score: v}},
        "noise": {"levels": [...], m: [...]}, "confusion_matrix": [[...]]}`` (the last for classification).
    """
    scorer = SubsetScorer(predictor, loader, device, "all modalities" if show_progress else None)
    outputs, targets = scorer.outputs, scorer.targets
    report: dict[str, Any] = {"metrics": task_metrics(outputs, targets, task)}
    name, score = task_score(task)
    single = scorer.alone(modalities, score)
    if len(modalities) == 2:  # without one of two modalities is the other one alone: no need to score it twice
        first, second = modalities
        missing = {first: single[second], second: single[first]}
    else:
        missing = scorer.without(modalities, score)
    report["per_modality"] = {m: {name: v} for m, v in single.items()}
    report["missing"] = {m: {name: v} for m, v in missing.items()}
    curves = scorer.noise_curves(modalities, list(noise_levels), score, seed)
    report["noise"] = {"levels": list(noise_levels), "metric": name, **curves}
    if task == "classification":
        cm = confusion_matrix(outputs.argmax(-1), targets, len(class_names or []) or int(outputs.shape[-1]))
        report["confusion_matrix"] = cm.tolist()
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        fused = report["metrics"].get(name, 0.0)
        where = {"run_name": run_name, "split": split}
        chance = 1 / len(report["confusion_matrix"]) if task == "classification" else None
        single_bars = {"fused": fused, **single}
        plot_bars(single_bars, plots_dir / "per_modality.png", "each modality alone", name, **where, chance=chance)
        plot_bars(
            {"all": fused, **{f"without {m}": v for m, v in missing.items()}},
            plots_dir / "missing.png",
            "one modality removed",
            name,
            **where,
            chance=chance,
        )
        plot_noise_curves(list(noise_levels), curves, plots_dir / "noise.png", name, **where, chance=chance)
        if task == "classification":
            names = list(class_names) if class_names else [str(i) for i in range(len(report["confusion_matrix"]))]
            plot_confusion_matrix(cm, names, plots_dir / "confusion_matrix.png", **where)
    return report
