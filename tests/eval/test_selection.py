"""Each metric declares its direction once; selection, the regression counterpart and plots read it."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.errors import ConfigError
from polymodal.eval.metrics import classification_metrics, cross_modal_retrieval, regression_metrics
from polymodal.eval.plots import curve_panel
from polymodal.eval.selection import METRICS, Metric, check_metric, higher_is_better, regression_counterpart


def test_every_metric_the_evaluation_reports_has_a_direction():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 12)
    reported = {
        **classification_metrics(rng.normal(size=(12, 3)), labels),
        **regression_metrics(rng.normal(size=12), rng.normal(size=12)),
        **cross_modal_retrieval(
            {"image": np.eye(12), "text": np.eye(12)}, {"image": labels, "text": labels}, [("image", "text")]
        ),
    }
    for name in reported:
        check_metric(name, "metric")


@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("accuracy", True),
        ("robust_accuracy", True),
        ("image_alone_accuracy", True),
        ("robust_macro_f1", True),
        ("image_to_text_map", True),
        ("parse_exact_match", True),
        ("loss", False),
        ("mae", False),
        ("robust_mae", False),
        ("image_alone_mae", False),
    ],
)
def test_a_prefixed_name_takes_the_direction_of_the_metric_it_ends_with(name: str, higher: bool):
    assert higher_is_better(name) is higher
    assert curve_panel(f"val_{name}") == ("metric" if higher else "loss")


def test_a_classification_metric_has_a_regression_counterpart():
    assert regression_counterpart("accuracy") == regression_counterpart("macro_f1") == "mae"
    assert regression_counterpart("robust_accuracy") == "robust_mae"
    assert regression_counterpart("mae") is None and regression_counterpart("r1") is None


def test_an_unknown_metric_is_refused_in_one_line_and_a_strategy_may_add_its_own(monkeypatch):
    with pytest.raises(ConfigError, match=r"^trainer.selection_metric: unknown metric 'bleu' \(known: loss, "):
        check_metric("bleu", "trainer.selection_metric")
    monkeypatch.setitem(METRICS, "bleu", Metric(True))
    assert higher_is_better("fr_bleu")
