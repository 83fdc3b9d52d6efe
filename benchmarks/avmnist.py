"""AV-MNIST benchmark: every ``avmnist-*`` recipe over several seeds, resumable, summarised as Markdown and JSON.

Usage (from the repository root, after ``polymodal data build avmnist ... --out DATA``)::

    python benchmarks/avmnist.py --data DATA --runs benchmarks/runs/avmnist \
        --methods late mla --seeds 0 1 2 -- trainer.epochs=3 data.max_train_samples=4000

Finished runs (``metrics.json`` present) are skipped; a run interrupted after a checkpoint is resumed; anything after
``--`` is passed to every run as overrides. Rows go to ``benchmarks/results/avmnist.{json,md}`` (``--results``).
Models are selected on validation only (the Trainer's best checkpoint); test accuracy is reported, never used.

Several regimes (a data build such as ``--components 4``, a budget such as ``trainer.epochs=10``) share the results
files: ``--regime NAME`` labels the rows of this ``--runs`` folder (one folder per regime), rows of other regimes
already in ``avmnist.json`` are kept, and each row also records the build's PCA components and SNR range. Rows
without a label (written before labels existed) count as regime ``default``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
from pathlib import Path

import torch

import polymodal

METHODS = ("image", "audio", "late", "concat", "tensor", "lowrank", "mla")
# Hand-written analysis below this line in avmnist.md survives regeneration of the tables above it.
NOTES_MARKER = "<!-- notes: kept when the tables are regenerated -->"


def run_one(method: str, seed: int, data: Path, runs: Path, overrides: list[str]) -> dict:
    """Trains ``avmnist-<method>`` with ``seed`` unless finished; returns its metrics."""
    out = runs / f"{method}-seed{seed}"
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    overrides = [f"data.root={data.resolve()}", f"trainer.seed={seed}", "trainer.progress=false", *overrides]
    resume = any((out / "checkpoints").glob("ckpt-*.json"))  # a step checkpoint was written
    if out.is_dir() and not resume:
        shutil.rmtree(out)
    print(f"{'resuming' if resume else 'training'} {out}", flush=True)
    return polymodal.train(f"avmnist-{method}", overrides, out=out, resume=resume).metrics


def build_info(data: Path) -> dict:
    """The data build's parameters recorded in a row: PCA components and noise range, from ``DATA/meta.json``."""
    meta = json.loads((data / "meta.json").read_text())
    return {"components": meta.get("pca_components"), "snr_db": meta.get("snr_db")}


def row(method: str, seed: int, metrics: dict, regime: str = "default", info: dict | None = None) -> dict:
    """One row of ``avmnist.json``."""
    return {
        "regime": regime,
        **(info or {}),
        "method": method,
        "seed": seed,
        "epochs": metrics["epochs"],
        "train_examples": metrics["train_examples"],
        "test_accuracy": metrics["test"]["accuracy"],
        "val_accuracy": metrics["val"]["accuracy"],
        "params": metrics["params"],
        "seconds_per_epoch": round(metrics["train_seconds"] / metrics["epochs"], 1),
        **{f"test_{m}_alone_accuracy": v["accuracy"] for m, v in metrics["per_modality"].items()},
    }


def merge_rows(old: list[dict], new: list[dict], regime: str) -> list[dict]:
    """``old`` rows of other regimes (unlabelled rows are ``default``), in order, then ``new`` (``regime``'s)."""
    kept = [{"regime": "default", **r} for r in old if r.get("regime", "default") != regime]
    return kept + new


def markdown(rows: list[dict], command: str) -> str:
    """A per-method summary (mean and spread over seeds) followed by every row."""
    lines = [
        "# AV-MNIST benchmark",
        "",
        f"Last command: `{command}` (every command: see the notes below the tables)",
        "",
        f"Hardware: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU only. "
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        "| regime | method | seeds | test accuracy (mean ± sd) | val accuracy | image alone (test) "
        "| audio alone (test) |",
        "|---|---|---|---|---|---|---|",
    ]
    regimes = list(dict.fromkeys(r.get("regime", "default") for r in rows))
    for regime, method in ((g, m) for g in regimes for m in METHODS):
        mine = [r for r in rows if r.get("regime", "default") == regime and r["method"] == method]
        if not mine:
            continue

        def stat(key: str, rows: list[dict] = mine) -> str:
            values = [r[key] for r in rows if key in r]
            if not values:
                return "-"
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            return f"{statistics.mean(values):.4f}{spread}"

        lines.append(
            f"| {regime} | {method} | {len(mine)} | {stat('test_accuracy')} | {stat('val_accuracy')} | "
            f"{stat('test_image_alone_accuracy')} | {stat('test_audio_alone_accuracy')} |"
        )
    lines += ["", "Every run:", "", "```json", json.dumps(rows, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder written by `polymodal data build avmnist`")
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/runs/avmnist"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--regime", default="default", help="label of this folder's rows in the results (default)")
    parser.add_argument("overrides", nargs="*", help="overrides for every run (after --)")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        for method in args.methods:
            run_one(method, seed, args.data, args.runs, args.overrides)
    info = build_info(args.data)
    mine = []
    for method in METHODS:
        for path in sorted(args.runs.glob(f"{method}-seed*/metrics.json")):
            seed = int(path.parent.name.rsplit("seed", 1)[1])
            mine.append(row(method, seed, json.loads(path.read_text()), args.regime, info))
    args.results.mkdir(parents=True, exist_ok=True)
    table = args.results / "avmnist.json"
    old = json.loads(table.read_text()) if table.is_file() else []
    rows = merge_rows(old, mine, args.regime)
    table.write_text(json.dumps(rows, indent=1) + "\n")
    command = " ".join(["python", *sys.argv])
    path = args.results / "avmnist.md"
    old = path.read_text() if path.is_file() else ""
    notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else NOTES_MARKER + "\n"
    path.write_text(markdown(rows, command) + "\n" + notes)
    print(f"wrote {args.results}/avmnist.md and avmnist.json ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
