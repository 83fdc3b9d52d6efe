"""benchmarks/avmnist.py: rows of several regimes (data builds, budgets) share the results files."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "avmnist.py"
spec = importlib.util.spec_from_file_location("avmnist_benchmark", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _row(regime, method, seed, acc):
    info = {"components": 4, "snr_db": [0.0, 10.0]}
    metrics = {
        "epochs": 3,
        "train_examples": 40,
        "test": {"accuracy": acc},
        "val": {"accuracy": acc},
        "params": 7,
        "train_seconds": 3.0,
        "per_modality": {"image": {"accuracy": 0.5}},
    }
    return bench.row(method, seed, metrics, regime, info)


def test_merge_keeps_other_regimes_and_labels_old_rows_default():
    old = [{"method": "late", "seed": 0, "test_accuracy": 0.9}, _row("pca4", "late", 0, 0.1)]
    new = [_row("pca4", "late", 0, 0.8), _row("pca4", "mla", 0, 0.85)]
    rows = bench.merge_rows(old, new, "pca4")
    assert [(r["regime"], r["method"], r["test_accuracy"]) for r in rows] == [
        ("default", "late", 0.9),
        ("pca4", "late", 0.8),
        ("pca4", "mla", 0.85),
    ]
    assert rows[1]["components"] == 4 and rows[1]["seconds_per_epoch"] == 1.0
    assert rows[1]["test_image_alone_accuracy"] == 0.5


def test_markdown_summarises_each_regime_separately():
    rows = [_row("default", "late", 0, 0.9), _row("pca4", "late", 0, 0.6), _row("pca4", "late", 1, 0.8)]
    text = bench.markdown(rows, "cmd")
    assert "| default | late | 1 | 0.9000 |" in text
    assert "| pca4 | late | 2 | 0.7000 ± 0.1414 |" in text
