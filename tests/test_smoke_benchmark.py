"""benchmarks/smoke.py: the scores of a benchmark's results, timings and machine state left out, compared one by one."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "smoke.py"
spec = importlib.util.spec_from_file_location("smoke_benchmark", SCRIPT)
smoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke)


def test_numbers_are_the_scores_without_timings():
    results = {
        "rows": [{"method": "late", "test_accuracy": 0.5, "train_seconds": 3.2, "selected_epoch": 2}],
        "whole_runs": [{"plain_epoch": 0.3, "ratio": 1.1, "plain_test_accuracy": 0.25, "pair_ratios": [1.0]}],
        "meta": {"load": [0.1], "torch_threads": 1, "versions": {"torch": 2}, "seed": 0, "smoke": True},
        "demo": [{"wall": 4.0, "report_share": 0.1, "scores": {"image alone": 0.75}}],
        "index": [{"build_s": 0.1, "query_ms": 0.2, "recall_at_10": 1.0}],
    }
    assert smoke.numbers(results) == {
        "rows.0.test_accuracy": 0.5,
        "rows.0.selected_epoch": 2,
        "whole_runs.0.plain_test_accuracy": 0.25,
        "meta.seed": 0,
        "meta.smoke": True,
        "demo.0.scores.image alone": 0.75,
        "index.0.recall_at_10": 1.0,
    }


def test_differences_name_each_changed_missing_or_new_number():
    old = {"a": 0.5, "b": 1, "c": 0.25}
    new = {"a": 0.5, "b": 2, "d": 0.125}
    assert smoke.differences(old, new, 0.0) == ["b: 1 -> 2", "c: 0.25 -> None", "d: None -> 0.125"]
    assert smoke.differences({"a": 0.5}, {"a": 0.50004}, 1e-4) == []
    assert smoke.differences({"a": 0.5}, {"a": 0.50004}, 0.0) == ["a: 0.5 -> 0.50004"]
