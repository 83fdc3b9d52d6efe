"""Which way each validation metric improves: checkpoint selection, plots and validation read it here.

A metric's name may carry a prefix naming what was scored: ``robust_accuracy``, ``image_alone_accuracy`` (one
modality alone), ``parse_accuracy`` (one task), ``image_to_text_r1`` (one retrieval direction). Such a name takes the
direction of the metric it ends with. A strategy that reports a metric of its own adds it to :data:`METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from polymodal.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """How one metric is compared.

    Attributes:
        higher_is_better: whether a larger value is a better model.
        regression: the metric selected instead on regression data, for a classification metric (a recipe may serve
            both tasks).
    """

    higher_is_better: bool
    regression: str | None = None


METRICS: dict[str, Metric] = {
    "loss": Metric(False),
    # Classification (eval.metrics.classification_metrics) and per-task scores (multitask strategies).
    "accuracy": Metric(True, regression="mae"),
    "macro_f1": Metric(True, regression="mae"),
    "exact_match": Metric(True),
    "score": Metric(True),
    # Regression (eval.metrics.regression_metrics).
    "mae": Metric(False),
    "mse": Metric(False),
    "corr": Metric(True),
    "acc2": Metric(True),
    "acc2_nonzero": Metric(True),
    "f1": Metric(True),
    "f1_nonzero": Metric(True),
    "acc7": Metric(True),
    # Retrieval (eval.metrics.cross_modal_retrieval).
    "r1": Metric(True),
    "r5": Metric(True),
    "r10": Metric(True),
    "map": Metric(True),
}


def base_metric(name: str) -> str | None:
    """The metric of :data:`METRICS` that ``name`` is or ends with (``accuracy`` for ``robust_accuracy``), or None."""
    found = [m for m in METRICS if name == m or name.endswith(f"_{m}")]
    return max(found, key=len, default=None)


def check_metric(name: str, where: str) -> str:
    """The metric of :data:`METRICS` that ``name`` is or ends with; raises a one-line ConfigError for another."""
    base = base_metric(name)
    if base is None:
        raise ConfigError(
            f"{where}: unknown metric {name!r} (known: {', '.join(METRICS)}, or a name ending in one, such as "
            "robust_accuracy or image_alone_accuracy)"
        )
    return base


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` is better (a ConfigError for an unknown metric)."""
    return METRICS[check_metric(name, "metric")].higher_is_better


def regression_counterpart(name: str) -> str | None:
    """The metric selected instead of the classification metric ``name`` on regression data (``robust_mae`` for
    ``robust_accuracy``), or None when ``name`` serves regression as it is."""
    base = base_metric(name)
    regression = METRICS[base].regression if base is not None else None
    if base is None or regression is None:
        return None
    return name.removesuffix(base) + regression
