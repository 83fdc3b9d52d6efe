"""PNG figures for training logs, confusion matrices and robustness results.

Every figure follows the same conventions, so plots of one run (and of different runs) read alike: a modality has one
colour everywhere (:func:`modality_color`), titles name the run and the split, the selected epoch is a dashed
vertical line, epoch axes have integer ticks, and accuracy plots draw chance level (``1 / number of classes``).

Figures are drawn through matplotlib's object interface (``Figure``, saved by the Agg renderer), not pyplot: no
display is needed, no global figure state accumulates over long sweeps, and matplotlib is imported only when a first
figure is drawn (a command that draws none does not pay for it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.eval.selection import METRICS, base_metric

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Columns that index the log rather than measure anything.
_AXIS_COLUMNS = ("step", "epoch")

# One colour per modality (and for the fused model, "fused" or "all" in bar names), the same in every figure.
MODALITY_COLORS: dict[str, str] = {
    "image": "tab:blue",
    "audio": "tab:orange",
    "text": "tab:green",
    "features": "tab:purple",
    "vision": "tab:cyan",
    "acoustic": "tab:brown",
    "fused": "black",
    "all": "black",
}
# Series that name no modality take these colours in turn (the fused colour first), with a new line style per round.
_OTHER_COLORS = ("black", "tab:red", "tab:pink", "tab:olive", "tab:gray")
_LINE_STYLES = ("-", "--", ":", "-.")

# Training-log columns that are settings rather than scores: the learning rate and a contrastive logit scale or
# temperature (around 14-20, which would flatten scores in [0, 1] on a shared axis).
_SCALAR_NAMES = ("scale", "temperature")

_SELECTED_STYLE: dict[str, Any] = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}
_CHANCE_STYLE: dict[str, Any] = {"color": "0.45", "linestyle": ":", "linewidth": 1.5, "zorder": 3}  # drawn over bars


def modality_color(name: str) -> str | None:
    """The colour of the modality a series or bar is about, or None (matplotlib's next colour) if it names none.

    ``name`` may be a modality (``"audio"``), ``"fused"``/``"all"``, or a label or log column that contains one as a
    word (``"without audio"``, ``"val_audio_alone_accuracy"``, ``"val_image_to_text_r1"``: its first modality).
    """
    for word in re.split(r"[^a-z]+", name.lower()):
        if word in MODALITY_COLORS:
            return MODALITY_COLORS[word]
    return None


def series_styles(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Colour and line style per series: the modality's colour when the name has one, else the next other colour;
    series that share a colour get different line styles, so no two series look alike."""
    others = 0
    uses: dict[str, int] = {}  # colour -> series already drawn in it
    styles = {}
    for name in names:
        color = modality_color(name)
        if color is None or color == MODALITY_COLORS["fused"]:
            color = _OTHER_COLORS[others % len(_OTHER_COLORS)]
            others += 1
        uses[color] = uses.get(color, 0) + 1
        styles[name] = {"color": color, "linestyle": _LINE_STYLES[(uses[color] - 1) % len(_LINE_STYLES)]}
    return styles


def curve_panel(name: str) -> str:
    """Which panel of the training curves a log column goes to: ``"scalar"`` (learning rate, logit scale or
    temperature), ``"metric"`` (validation scores) or ``"loss"`` (training losses, and validation metrics where lower
    is better: the loss and errors, in the units of a regression loss)."""
    last = name.rsplit("_", 1)[-1]
    if name == "lr" or last in _SCALAR_NAMES:
        return "scalar"
    base = base_metric(name.removeprefix("val_"))
    if name.startswith("val_") and "loss" not in name and (base is None or METRICS[base].higher_is_better):
        return "metric"
    return "loss"


def _title(what: str, run_name: str | None, split: str | None) -> str:
    """``what`` over a second line naming the run and the split, such as ``run mnist-1, test split``."""
    where = ", ".join(part for part in (run_name and f"run {run_name}", split and f"{split} split") if part)
    return f"{what}\n{where}" if where else what


def _subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, **options: Any) -> Any:
    """A new figure and its axes, as ``pyplot.subplots`` returns them, without pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **options)


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
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


def _unit_range(ax: Axes, values: Sequence[float]) -> None:
    """Scores that all lie in [0, 1] get the whole [0, 1] range, so small differences are not blown up."""
    if values and all(0.0 <= v <= 1.0 for v in values):
        ax.set_ylim(0.0, 1.05)


def _mark_selected(ax: Axes, epoch: int | None) -> None:
    if epoch is not None:
        ax.axvline(epoch, label=f"selected (epoch {epoch})", **_SELECTED_STYLE)


def _mark_chance(ax: Axes, chance: float | None) -> None:
    if chance is not None:
        ax.axhline(chance, label=f"chance ({chance:.3g})", **_CHANCE_STYLE)


def _epoch_positions(rows: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Each row's place in epochs: a row logged at step ``s`` of epoch ``e`` sits at ``e - 1`` plus the fraction of
    that epoch's steps done by ``s``, so the end-of-epoch validation rows sit exactly on ``e``."""
    ends: dict[float, float] = {}
    for row in rows:
        epoch, step = _number(row.get("epoch")), _number(row.get("step"))
        if epoch is not None and step is not None:
            ends[epoch] = max(ends.get(epoch, step), step)
    order = sorted(ends)
    starts = dict(zip(order, [0.0] + [ends[e] for e in order[:-1]], strict=True))
    positions: list[float | None] = []
    for row in rows:
        epoch, step = _number(row.get("epoch")), _number(row.get("step"))
        if epoch is None or step is None:
            positions.append(None)
            continue
        length = ends[epoch] - starts[epoch]
        positions.append(epoch - (ends[epoch] - step) / length if length > 0 else epoch)
    return positions


def _x_axis(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[float | None]]:
    """The x name and values of a log: fractional epochs when rows have both step and epoch, else whichever they
    have, else the row number."""
    has = {name: any(_number(r.get(name)) is not None for r in rows) for name in _AXIS_COLUMNS}
    if all(has.values()):
        return "epoch", _epoch_positions(rows)
    for name in _AXIS_COLUMNS:
        if has[name]:
            return name, [_number(r.get(name)) for r in rows]
    return "row", [float(i) for i in range(len(rows))]


def plot_training_curves(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    run_name: str | None = None,
    selected_epoch: int | None = None,
) -> Path:
    """Plots every numeric column of a training log against the epoch, in up to three stacked panels.

    Losses (training losses, validation loss and errors such as MAE) go on top, validation scores in the middle, and
    the learning rate with other training scalars (a contrastive logit scale or temperature) at the bottom, where
    the learning rate has its own y axis. Rows logged within an epoch sit at fractional epochs, so training and
    validation points share one axis with integer ticks. A row may lack a column or leave it blank, as validation
    columns usually do.

    Args:
        rows: log rows, e.g. from ``csv.DictReader``, with keys such as ``epoch``, ``step``, ``train_loss``,
            ``val_accuracy``; values may be numbers or numeric strings.
        path: where to write the PNG.
        run_name: named in the title.
        selected_epoch: the epoch whose weights the run kept (1-based, as ``log.csv``), drawn as a dashed line.

    Returns:
        The path written.
    """
    if not rows:
        raise ValueError("no log rows to plot")
    x_name, xs = _x_axis(rows)
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns and c not in _AXIS_COLUMNS)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for column in columns:
        found = [(x, _number(row.get(column))) for x, row in zip(xs, rows, strict=True)]
        points = [(x, y) for x, y in found if x is not None and y is not None]
        if points:
            series[column] = ([x for x, _ in points], [y for _, y in points])
    if not series:
        raise ValueError(f"log rows have no numeric column besides {', '.join(_AXIS_COLUMNS)}")
    panels = {
        title: [c for c in series if curve_panel(c) == kind]
        for kind, title in (("loss", "losses"), ("metric", "validation scores"), ("scalar", "learning rate & scalars"))
    }
    panels = {title: names for title, names in panels.items() if names}
    # Each panel is tall enough for its legend (one line per series plus the selected-epoch line) beside it.
    heights = [max(3.0, 0.25 * (len(names) + 1) + 0.8) for names in panels.values()]
    fig, axes = _subplots(
        len(panels), 1, figsize=(8, sum(heights)), sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, (title, names) in zip(axes[:, 0], panels.items(), strict=True):
        # The learning rate is orders of magnitude below a logit scale: it keeps the left axis, the rest the right.
        twin = ax.twinx() if "lr" in names and len(names) > 1 else None
        styles = series_styles(names)
        for name in names:
            target = twin if twin is not None and name != "lr" else ax
            xs_, ys = series[name]
            target.plot(xs_, ys, marker="o" if len(xs_) < 30 else None, markersize=3, label=name, **styles[name])
        if twin is not None:
            ax.set_ylabel("lr")
            twin.set_ylabel(", ".join(n for n in names if n != "lr"))
        if title == "validation scores":
            _unit_range(ax, [y for name in names for y in series[name][1]])
        _mark_selected(ax, selected_epoch)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
        handles = ax.get_lines() + (twin.get_lines() if twin is not None else [])
        handles.sort(key=lambda line: line.get_label().startswith("selected ("))  # the marker last, after the series
        anchor = (1.12 if twin is not None else 1.02, 1.0)  # clear of the twin's tick labels
        ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=anchor)
    axes[-1, 0].set_xlabel(x_name)
    _integer_ticks(axes[-1, 0].xaxis)
    fig.suptitle(_title("training curves (train and validation splits)", run_name, None))
    return _save(fig, path)


def plot_confusion_matrix(
    cm: Any, class_names: Sequence[str], path: str | Path, run_name: str | None = None, split: str | None = None
) -> Path:
    """Draws a confusion matrix with true classes as rows and counts written in the cells.

    Args:
        cm: counts (C, C), rows = true class, columns = predicted class (as :func:`polymodal.eval.confusion_matrix`).
        class_names: C names.
        path: where to write the PNG.
        run_name: named in the title.
        split: the split scored (``"test"``, ``"validation"``), named in the title.

    Returns:
        The path written.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"cm must be (C, C) with C = {len(class_names)} class names, got {cm.shape}")
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = _subplots(figsize=(size, size))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_title("confusion matrix", run_name, split))
    # Cell labels become unreadable past ~30 classes; the colours still show the pattern.
    if len(class_names) <= 30:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                text = f"{cm[i, j]:g}"
                ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    return _save(fig, path)


def plot_noise_curves(
    levels: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    ylabel: str = "accuracy",
    run_name: str | None = None,
    split: str | None = None,
    chance: float | None = None,
) -> Path:
    """Draws one line per corrupted modality, in its colour: score against noise level.

    Args:
        levels: noise levels, (L,).
        curves: ``{modality: scores (L,)}``, as returned by :func:`polymodal.eval.noise_curves`.
        path: where to write the PNG.
        ylabel: name of the score.
        run_name: named in the title.
        split: the split scored, named in the title.
        chance: the score of guessing (e.g. ``1 / classes`` for accuracy), drawn as a dotted line; None for none.

    Returns:
        The path written.
    """
    fig, ax = _subplots(figsize=(6, 4))
    for name, values in curves.items():
        if len(values) != len(levels):
            raise ValueError(f"curve {name!r} has {len(values)} points for {len(levels)} levels")
        ax.plot(list(levels), list(values), marker="o", label=f"noise on {name}", color=modality_color(name))
    _mark_chance(ax, chance)
    _unit_range(ax, [float(v) for values in curves.values() for v in values])
    ax.set_xticks(list(levels))
    ax.set_xlabel("noise level")
    ax.set_ylabel(ylabel)
    ax.set_title(_title("one modality corrupted, the others clean", run_name, split))
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_bars(
    values: Mapping[str, float],
    path: str | Path,
    title: str,
    ylabel: str,
    run_name: str | None = None,
    split: str | None = None,
    chance: float | None = None,
) -> Path:
    """Draws a labelled bar per entry, e.g. per-modality or missing-modality accuracy, in the modality's colour.

    A bar whose name contains a modality (``"audio"``, ``"without audio"``) takes its colour (hatched when the name
    says ``without``); ``"fused"`` and ``"all"`` take the fused colour.

    Args:
        values: ``{name: value}``, drawn in insertion order.
        path: where to write the PNG.
        title: what the figure shows; the run and split are added below it.
        ylabel: name of the value.
        run_name: named in the title.
        split: the split scored, named in the title.
        chance: the score of guessing, drawn as a dotted line; None for none.

    Returns:
        The path written.
    """
    names, heights = list(values), [float(v) for v in values.values()]
    fig, ax = _subplots(figsize=(max(4.0, 1.0 * len(names) + 2), 4))
    colors = [modality_color(n) or _OTHER_COLORS[1] for n in names]
    bars = ax.bar(names, heights, color=colors, edgecolor="white")
    for bar, name in zip(bars, names, strict=True):
        if name.startswith("without"):
            bar.set_hatch("//")
    ax.bar_label(bars, fmt="%.3f" if all(0 <= h <= 1 for h in heights) else "%.3g")
    _mark_chance(ax, chance)
    _unit_range(ax, heights)
    ax.set_title(_title(title, run_name, split))
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if chance is not None:  # beside the axes: inside, it would cover the bars' labels
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_modality_accuracy(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    score: str = "accuracy",
    run_name: str | None = None,
    selected_epoch: int | None = None,
    chance: float | None = None,
) -> Path | None:
    """Laziness plot: validation score of the fused model and of each modality alone, per epoch.

    A modality the fused model neglects stays low alone while the fused score climbs (modality laziness).

    Args:
        rows: wide log rows with ``epoch``, ``val_<score>`` and ``val_<modality>_alone_<score>``.
        path: where to write the PNG.
        score: the score's name.
        run_name: named in the title.
        selected_epoch: the epoch whose weights the run kept, drawn as a dashed line.
        chance: the score of guessing, drawn as a dotted line; None for none.

    Returns:
        The path written, or None when the log has no per-modality scores.
    """
    suffix = f"_alone_{score}"
    names = [f"val_{score}"] + sorted({c for r in rows for c in r if c.startswith("val_") and c.endswith(suffix)})
    if len(names) == 1:
        return None
    fig, ax = _subplots(figsize=(6, 4))
    ys_all = []
    for name in names:
        found = [(_number(r.get("epoch")), _number(r.get(name))) for r in rows]
        points = [(x, y) for x, y in found if x is not None and y is not None]
        modality = "fused" if name == names[0] else name[len("val_") : -len(suffix)]
        label = "fused" if name == names[0] else f"{modality} alone"
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label, color=modality_color(modality))
        ys_all += [y for _, y in points]
    _mark_selected(ax, selected_epoch)
    _mark_chance(ax, chance)
    _unit_range(ax, ys_all)
    ax.set_xlabel("epoch")
    _integer_ticks(ax.xaxis)
    ax.set_ylabel(f"validation {score}")
    ax.set_title(_title("each modality alone per epoch (modality laziness)", run_name, "validation"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, path)
