"""Self-MI experiments for issue 9: controlled AV-digits regression, CMU-MOSI folds and MOSI text-only.

Run from the repository root (each part writes its rows under ``$SELFMI_RUNS/parts``; ``report`` merges them into
``results/selfmi.json`` and prints the table and environment used in ``results/selfmi.md``):

    OMP_NUM_THREADS=1 python benchmarks/selfmi.py digits --seeds 0 1
    OMP_NUM_THREADS=1 python benchmarks/selfmi.py mosi --seeds 0
    OMP_NUM_THREADS=1 python benchmarks/selfmi.py mosi-text --seeds 0
    python benchmarks/selfmi.py report

Methods are one override apart: ``regression`` (ulgm and cpc off), ``ulgm``, ``cpc`` and ``self_mi`` (both).
``--methods``, ``--folds`` (mosi) and ``--overrides`` (added to every run) make a smaller study.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import polymodal

RESULTS = Path(__file__).parent / "results"
RUNS = Path(os.environ.get("SELFMI_RUNS", "/tmp/selfmi_runs"))
PARTS = RUNS / "parts"  # rows of each part, merged into results/selfmi.json by ``report``
MOSI = os.environ.get("MOSI_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mosi"))
METHODS = {
    "regression": ["strategy.ulgm=false", "strategy.cpc=false"],
    "ulgm": ["strategy.ulgm=true", "strategy.cpc=false"],
    "cpc": ["strategy.ulgm=false", "strategy.cpc=true"],
    "self_mi": ["strategy.ulgm=true", "strategy.cpc=true"],
}
# What the CPU budget allowed (2 shared cores): fewer samples and epochs than the paper, cheap evaluation.
COMMON = ["trainer.progress=false", "eval.per_modality_every_epoch=false", "eval.noise_levels=[0.0]"]
DIGITS = ["data.max_train_samples=2000", "trainer.epochs=4"]
MOSI_TEXT_MODEL = "model.encoders={text: {name: transformer, dim: 32, depth: 1, heads: 4, max_length: 256}}"


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def generated_labels(run: Path) -> dict:
    """The strategy state of the run's last checkpoint (labels of every training sample seen)."""
    last = sorted(glob.glob(str(run / "checkpoints" / "ckpt-*.json")))[-1]
    return json.loads(Path(last).read_text())["strategy"]


def train(recipe: str, overrides: list[str], name: str) -> tuple[dict, Path]:
    out = RUNS / name
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    metrics = polymodal.train(recipe, [*COMMON, *overrides], out=out).metrics
    metrics["wall"] = time.perf_counter() - started
    return metrics, out


def row(method: str, dataset: str, seed: int, metrics: dict, overrides: list[str], recipe: str) -> dict:
    test = metrics["test"]
    return {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        **{k: round(test[k], 4) for k in ("mae", "corr", "acc2", "acc2_nonzero", "f1", "f1_nonzero", "acc7")},
        "train_examples": metrics["train_examples"],
        "epochs": metrics["epochs"],
        "train_seconds": metrics["train_seconds"],
        "command": f"polymodal train {recipe} " + " ".join([*COMMON, *overrides]),
    }


def run_digits(seeds: list[int], methods: list[str], extra: list[str]) -> list[dict]:
    rows = []
    for seed in seeds:
        for method in methods:
            overrides = [*DIGITS, *METHODS[method], f"trainer.seed={seed}", *extra]
            metrics, out = train("selfmi-digits", overrides, f"digits-{method}-{seed}")
            r = row(method, "selfmi-digits", seed, metrics, overrides, "selfmi-digits")
            if method in ("ulgm", "self_mi"):
                data = polymodal.load_data("selfmi-digits", [*COMMON, *overrides])
                source = data.train.dataset  # the full SelfMIDigits
                state = generated_labels(out)
                index = np.array(state["indices"])
                truth = source.contributions.numpy()[index]
                target = source.targets.numpy()[index]
                labels = np.array(state["labels"])
                r["unimodal_label_corr"] = {
                    m: round(pearson(labels[j], truth[:, j]), 4) for j, m in enumerate(state["modalities"])
                }
                # Reference: how well the human (fused) label itself tracks each modality's contribution.
                r["fused_label_corr"] = {
                    m: round(pearson(target, truth[:, j]), 4) for j, m in enumerate(state["modalities"])
                }
            rows.append(r)
            print(json.dumps(r), flush=True)
    return rows


def run_mosi(seeds: list[int], methods: list[str], extra: list[str], folds: int = 5) -> list[dict]:
    rows = []
    for seed in seeds:
        for method in methods:
            for fold in range(folds):
                overrides = [f"data.root={MOSI}", f"data.fold={fold}", f"data.folds={folds}", *METHODS[method]]
                overrides += [f"trainer.seed={seed}", *extra]
                metrics, _ = train("selfmi-mosi", overrides, f"mosi-{method}-{seed}-{fold}")
                r = row(method, f"mosi-valid229-videocv-fold{fold}", seed, metrics, overrides, "selfmi-mosi")
                if method in ("ulgm", "self_mi"):
                    r["unimodal_label_corr"] = None  # MOSI has no per-modality ground truth
                rows.append(r)
                print(json.dumps(r), flush=True)
    return rows


def run_mosi_text(seeds: list[int], extra: list[str]) -> list[dict]:
    rows = []
    for seed in seeds:
        overrides = [
            "data.name=mosi-text",
            f"data.root={MOSI}",
            "data.modalities=[text]",
            MOSI_TEXT_MODEL,
            "trainer.epochs=8",
            *METHODS["regression"],
            f"trainer.seed={seed}",
            *extra,
        ]
        metrics, _ = train("selfmi-mosi", overrides, f"mosi-text-{seed}")
        r = row("regression", "mosi-text-official-test", seed, metrics, overrides, "selfmi-mosi")
        rows.append(r)
        print(json.dumps(r), flush=True)
    return rows


def environment() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?")
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "note": "2 CPU cores shared with other jobs; OMP_NUM_THREADS=1; no GPU",
    }


def report(results: Path) -> None:
    rows = []
    for part in ("digits", "mosi", "mosi-text"):
        path = PARTS / f"selfmi.{part}.json"
        if path.is_file():
            rows += json.loads(path.read_text())
    (results / "selfmi.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "| dataset | method | n | MAE | Corr | Acc-2 | F1 | Acc-7 | label corr (image/audio/text) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        dataset = "mosi-valid229-videocv" if r["dataset"].startswith("mosi-valid229") else r["dataset"]
        groups.setdefault((dataset, r["method"]), []).append(r)
    for (dataset, method), group in groups.items():
        cells = []
        for key in ("mae", "corr", "acc2", "f1", "acc7"):
            values = [g[key] for g in group]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3f}{spread}")
        corr = [g.get("unimodal_label_corr") for g in group if g.get("unimodal_label_corr")]
        label = " / ".join(f"{statistics.mean(c[m] for c in corr):.3f}" for m in corr[0]) if corr else ""
        lines.append(f"| {dataset} | {method} | {len(group)} | " + " | ".join(cells) + f" | {label} |")
    print("\n".join(lines))
    print(json.dumps(environment(), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["digits", "mosi", "mosi-text", "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="digits, mosi")
    parser.add_argument("--folds", type=int, default=5, help="mosi: cross-validation folds (default 5)")
    parser.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="report: folder of selfmi.json")
    args = parser.parse_args()
    if args.part == "report":
        report(args.results)
        return
    run = {
        "digits": lambda: run_digits(args.seeds, args.methods, args.overrides),
        "mosi": lambda: run_mosi(args.seeds, args.methods, args.overrides, args.folds),
        "mosi-text": lambda: run_mosi_text(args.seeds, args.overrides),
    }[args.part]
    rows = run()
    PARTS.mkdir(parents=True, exist_ok=True)
    # Rows of other seeds already in the part file are kept, so seeds can be run in separate calls.
    path = PARTS / f"selfmi.{args.part}.json"
    kept = [r for r in json.loads(path.read_text()) if r["seed"] not in args.seeds] if path.is_file() else []
    path.write_text(json.dumps(kept + rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
