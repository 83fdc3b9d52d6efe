"""Per-task scores and expert utilisation of multi-task runs (MultiModel).

Works on packed prediction and target tensors (``[task id, output...]`` per row, see
``polymodal.data.multitask_digits``) and on routing counts; never on a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from torch import Tensor

from polymodal.data.multitask_digits import TaskSpec
from polymodal.eval.metrics import accuracy
from polymodal.eval.plots import _save, _subplots


def exact_match(pred: Tensor, target: Tensor) -> float:
    """Share of rows whose byte sequences agree exactly, end included.

    Both sides are 0 from their end byte on, so a prediction that runs on past the true end does not match.

    Args:
        pred: (N, L) predicted byte ids, 0 from the end on.
        target: (N, L) true byte ids, 0 from the end on.

    Returns:
        Exact-match rate in [0, 1]; 0.0 for no rows.
    """
    if not len(target):
        return 0.0
    return float((pred == target).all(1).double().mean())


class TaskScore(TypedDict):
    """One task's score: its metric's name, the value and the number of examples scored."""

    metric: str
    value: float
    examples: int


def task_scores(pred: Tensor, target: Tensor, tasks: Sequence[TaskSpec]) -> dict[str, TaskScore]:
    """Score of every task present in ``target``: accuracy for classes, exact match for text.

    Args:
        pred: (N, 1 + L) packed predictions (task id, then the class index or the bytes).
        target: (N, 1 + L) packed targets.
        tasks: the task table indexed by task id.

    Returns:
        ``{task: {"metric": name, "value": score, "examples": n}}`` in task-table order.
    """
    scores: dict[str, TaskScore] = {}
    for task_id, spec in enumerate(tasks):
        rows = target[:, 0] == task_id
        if not bool(rows.any()):
            continue
        p, t = pred[rows, 1:], target[rows, 1:]
        value = accuracy(p[:, 0], t[:, 0]) if spec.output == "class" else exact_match(p, t)
        scores[spec.name] = {"metric": spec.metric, "value": value, "examples": int(rows.sum())}
    return scores


def expert_utilisation(counts: Mapping[str, Mapping[str, Tensor]]) -> dict[str, dict[str, list[float]]]:
    """Per MoE layer and task, the share of routed token slots that went to each expert (rows sum to 1).

    Args:
        counts: ``{layer: {task: (E,) number of tokens routed to each expert}}``.
    """
    return {
        layer: {task: (c.double() / c.sum().clamp(min=1)).tolist() for task, c in by_task.items()}
        for layer, by_task in counts.items()
    }


def plot_expert_utilisation(utilisation: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path) -> Path:
    """One heatmap per MoE layer: tasks (rows) by experts (columns), the share of each task's routed tokens.

    Args:
        utilisation: the output of :func:`expert_utilisation`.
        path: where to write the PNG.

    Returns:
        The path written.
    """
    layers = list(utilisation)
    fig, axes = _subplots(1, max(1, len(layers)), figsize=(4.5 * max(1, len(layers)), 3.5), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=False):
        tasks = list(utilisation[layer])
        shares = np.array([utilisation[layer][t] for t in tasks], dtype=float)
        image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_xticks(range(shares.shape[1]), [str(e) for e in range(shares.shape[1])])
        ax.set_xlabel("expert")
        ax.set_title(f"{layer} MoE: share of routed tokens")
        for (i, j), value in np.ndenumerate(shares):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w" if value < 0.5 else "k", fontsize=8)
        fig.colorbar(image, ax=ax)
    return _save(fig, path)


__all__ = ["exact_match", "expert_utilisation", "plot_expert_utilisation", "task_scores"]
