"""PNG figures for training logs, confusion matrices and robustness results.

Uses matplotlib's non-interactive Agg backend so plotting works on headless machines; each figure is closed after
saving, so long sweeps do not accumulate open figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)
import numpy as np  # noqa: E402

# Columns that index the log rather than measure anything.
_AXIS_COLUMNS = ("step", "epoch")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _number(value: Any) -> float | None:
    """The value as a float, or None for blanks and non-numeric text (CSV rows hold strings)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def plot_training_curves(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Plots every numeric column of a training log against the step.

    Columns whose name contains ``loss`` share the left panel; all other numeric columns (accuracies, F1, learning
    rate...) share the right panel. A row may lack a column or leave it blank, as validation columns usually do.

    Args:
        rows: log rows, e.g. from ``csv.DictReader``, with keys such as ``epoch``, ``step``, ``train_loss``,
            ``val_accuracy``; values may be numbers or numeric strings.
        path: where to write the PNG.

    Returns:
        The path written.
    """
    if not rows:
        raise ValueError("no log rows to plot")
    x_name = next((name for name in _AXIS_COLUMNS if any(_number(r.get(name)) is not None for r in rows)), None)
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns and c not in _AXIS_COLUMNS)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for column in columns:
        xs, ys = [], []
        for i, row in enumerate(rows):
            x = float(i) if x_name is None else _number(row.get(x_name))
            y = _number(row.get(column))
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if ys:
            series[column] = (xs, ys)
    if not series:
        raise ValueError(f"log rows have no numeric column besides {', '.join(_AXIS_COLUMNS)}")
    groups = [
        ("loss", [c for c in series if "loss" in c.lower()]),
        ("metric", [c for c in series if "loss" not in c.lower()]),
    ]
    groups = [(label, names) for label, names in groups if names]
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, (label, names) in zip(axes[0], groups, strict=True):
        for name in names:
            xs, ys = series[name]
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        ax.set_xlabel(x_name or "row")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_confusion_matrix(cm: Any, class_names: Sequence[str], path: str | Path) -> Path:
    """Draws a confusion matrix with true classes as rows and counts written in the cells.

    Args:
        cm: counts (C, C), rows = true class, columns = predicted class (as :func:`polymodal.eval.confusion_matrix`).
        class_names: C names.
        path: where to write the PNG.

    Returns:
        The path written.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"cm must be (C, C) with C = {len(class_names)} class names, got {cm.shape}")
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    # Cell labels become unreadable past ~30 classes; the colours still show the pattern.
    if len(class_names) <= 30:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                text = f"{cm[i, j]:g}"
                ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    return _save(fig, path)


def plot_noise_curves(
    levels: Sequence[float], curves: Mapping[str, Sequence[float]], path: str | Path, ylabel: str = "accuracy"
) -> Path:
    """Draws one line per corrupted modality: score against noise level.

    Args:
        levels: noise levels, (L,).
        curves: ``{modality: scores (L,)}``, as returned by :func:`polymodal.eval.noise_curves`.
        path: where to write the PNG.
        ylabel: name of the score.

    Returns:
        The path written.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        if len(values) != len(levels):
            raise ValueError(f"curve {name!r} has {len(values)} points for {len(levels)} levels")
        ax.plot(list(levels), list(values), marker="o", label=name)
    ax.set_xlabel("noise level")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return _save(fig, path)


def plot_bars(values: Mapping[str, float], path: str | Path, title: str, ylabel: str) -> Path:
    """Draws a labelled bar per entry, e.g. per-modality or missing-modality accuracy.

    Args:
        values: ``{name: value}``, drawn in insertion order.
        path: where to write the PNG.
        title: figure title.
        ylabel: name of the value.

    Returns:
        The path written.
    """
    names, heights = list(values), [float(v) for v in values.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(names) + 2), 4))
    bars = ax.bar(names, heights, color="tab:blue")
    ax.bar_label(bars, fmt="%.3g")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_modality_accuracy(rows: Sequence[Mapping[str, Any]], path: str | Path, score: str = "accuracy") -> Path | None:
    """Laziness plot: validation score of the fused model and of each modality alone, per epoch.

    A modality the fused model neglects stays low alone while the fused score climbs (modality laziness).

    Args:
        rows: wide log rows with ``epoch``, ``val_<score>`` and ``val_<modality>_alone_<score>``.
        path: where to write the PNG.
        score: the score's name.

    Returns:
        The path written, or None when the log has no per-modality scores.
    """
    suffix = f"_alone_{score}"
    names = [f"val_{score}"] + sorted({c for r in rows for c in r if c.startswith("val_") and c.endswith(suffix)})
    if len(names) == 1:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        points = [(_number(r.get("epoch")), _number(r.get(name))) for r in rows]
        points = [(x, y) for x, y in points if x is not None and y is not None]
        label = "fused" if name == names[0] else name[len("val_") : -len(suffix)] + " alone"
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"validation {score}")
    ax.set_title("each modality alone per epoch (modality laziness)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
