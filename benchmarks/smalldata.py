"""Small-data benchmark (issue 15): does every modality learn from a user's few hundred files?

For each size (training rows per digit) and seed, ``smalldata_build.py`` writes a user-like folder (images at mixed
sizes and colours, speech at mixed sample rates and channel counts, number words with ~15 % typos; a fixed test set),
then this script trains, through the public run API and the bundled ``manifest-joint`` recipe:

- ``default``: the recipe as shipped;
- alternatives tried while choosing it (``VARIANTS``): each is the recipe plus overrides;
- ``unimodal-<m>``: the recipe's encoder for one modality alone (same preprocessing, augmentation and budget);

and reports the raw 1-nearest-neighbour per modality that the ``default`` run's laziness diagnosis computes
(``metrics.json``'s ``diagnosis``, to 4 decimals) as the ``raw-1nn`` row. Runs are skipped when finished.
Models are selected on the validation split carved from train; test numbers are reported, never used.

Usage (from the repository root; ``--shared`` defaults to ../shared/data)::

    python benchmarks/smalldata.py run --runs benchmarks/runs/smalldata --sizes 24 --seeds 0 1 2 \
        --variants default old unimodal
    python benchmarks/smalldata.py report --runs benchmarks/runs/smalldata
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smalldata_build  # noqa: E402

import polymodal  # noqa: E402

MODALITIES = ("image", "audio", "text")
ENCODERS = {
    "image": "{image: {name: lenet, out_dim: 64}}",
    "audio": "{audio: {name: spec_cnn, out_dim: 64}}",
    "text": "{text: {name: transformer, dim: 64, depth: 1}}",
}
# The recipe plus these overrides; each variant states its whole strategy and augmentation, so it stays the same
# config whatever the recipe's default. "old" is manifest-joint before issue 15 (concat fusion, fused loss only, fused
# accuracy for selection, no augmentation, 10 epochs, 20 warm-up steps, 28 px gray / 8 kHz 1 s centre crop).
AUGMENT_ALL = "data.augment={image: {}, audio: {}, text: {}}"
JOINT = "strategy={name: joint, unimodal_weight: 1.0}"
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "old": [
        "strategy={name: joint, modality_dropout: 0.2}",
        "model.fusion={name: concat}",
        "model.head={name: mlp, hidden: 128}",
        "trainer.selection_metric=accuracy",
        "trainer.epochs=10",
        "trainer.scheduler={name: cosine, warmup_steps: 20}",
        "data.augment={}",
        "data.image={size: 28, channels: 1}",
        "data.audio={sample_rate: 8000, max_frames: 64}",
        "data.text={max_length: 64}",
    ],
    "mla-noaug": ["data.augment={}"],
    "mla": [AUGMENT_ALL],
    "mla-proj": ["strategy={name: alternating}", AUGMENT_ALL],
    "joint-unimodal": [JOINT, AUGMENT_ALL],
    "noaug": [JOINT, "data.augment={}"],
    "concat": [JOINT, AUGMENT_ALL, "model.fusion={name: concat}", "model.head={name: mlp, hidden: 128}"],
    "fused-selection": [JOINT, AUGMENT_ALL, "trainer.selection_metric=accuracy"],
    "no-unimodal-loss": ["strategy={name: joint}", AUGMENT_ALL],
    "weight-3": ["strategy={name: joint, unimodal_weight: 3.0}", AUGMENT_ALL],
    "mlp-head": [JOINT, AUGMENT_ALL, "model.head={name: mlp, hidden: 128}"],
    "aug-unimodal-image": [
        JOINT,
        AUGMENT_ALL,
        "model.encoders={image: {name: lenet, out_dim: 64}}",
        "data.modalities={photo: image}",
    ],
}


def data_dir(runs: Path, size: int, seed: int, shared: Path) -> Path:
    folder = runs / "data" / f"{size}-{seed}"
    if not (folder / "test.csv").is_file():
        smalldata_build.build(shared, size, seed, folder)
    return folder


def overrides_for(variant: str, folder: Path, seed: int) -> list[str]:
    base = [f"data.train={folder / 'train.csv'}", f"data.test={folder / 'test.csv'}", f"trainer.seed={seed}"]
    if variant.startswith("unimodal-"):
        m = variant.removeprefix("unimodal-")
        # That modality's encoder alone, with the recipe's preprocessing and augmentation (joint strategy: with one
        # modality its fused and unimodal losses are the same loss, kept as the baselines were first run).
        encoders, columns = f"model.encoders={ENCODERS[m]}", f"data.modalities={{{_column(folder, m)}: {m}}}"
        return [*base, JOINT, encoders, columns]
    return [*base, *VARIANTS[variant]]


def _column(folder: Path, modality: str) -> str:
    return {"image": "photo", "audio": "speech", "text": "caption"}[modality]


def run_one(runs: Path, size: int, seed: int, variant: str, shared: Path, extra: Sequence[str] = ()) -> dict:
    out = runs / f"{size}-{seed}" / variant
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    folder = data_dir(runs, size, seed, shared)
    options = [*overrides_for(variant, folder, seed), "trainer.progress=false", *extra]
    print(f"training {out}", flush=True)
    return polymodal.train("manifest-joint", options, out=out).metrics


def knn(folder: Path) -> dict[str, float] | None:
    """Raw 1-NN per modality on the default recipe's data (its fitted preprocessing and validation carve): the
    reference of the ``default`` run's laziness diagnosis; None before that run has finished."""
    path = folder / "default" / "metrics.json"
    if not path.is_file():
        return None
    diagnosis = json.loads(path.read_text())["diagnosis"]["modalities"]
    return {m: v["reference"] for m, v in diagnosis.items() if v["reference"] is not None}


def expand(variants: list[str]) -> list[str]:
    out = []
    for v in variants:
        out += [f"unimodal-{m}" for m in MODALITIES] if v == "unimodal" else [v]
    return out


def cmd_run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    for size in args.sizes:
        for seed in args.seeds:
            for variant in expand(args.variants):
                run_one(args.runs, size, seed, variant, args.shared, args.overrides)


def _best_val_robust(run: Path) -> float | None:
    """The best validation robust accuracy over epochs (the selection metric of the recipe), from log.csv."""
    with (run / "log.csv").open(newline="", encoding="utf-8") as f:
        values = [float(r["value"]) for r in csv.DictReader(f) if r["name"] == "val_robust_accuracy"]
    return max(values) if values else None


def _row(metrics: dict) -> dict:
    return {
        "fused": metrics["test"]["accuracy"],
        **{f"{m}_alone": v["accuracy"] for m, v in metrics["per_modality"].items()},
        **{f"without_{m}": v["accuracy"] for m, v in metrics["missing"].items()},
        "train_seconds": metrics["train_seconds"],
        "selected_epoch": metrics.get("selected", {}).get("epoch"),
    }


def collect(runs: Path) -> list[dict]:
    rows = []
    for folder in sorted(p for p in runs.glob("*-*") if p.name != "data" and p.is_dir()):
        size, seed = (int(x) for x in folder.name.split("-"))
        scores = knn(folder)
        if scores is not None:
            rows.append(
                {"size": size, "seed": seed, "variant": "raw-1nn", **{f"{m}_alone": v for m, v in scores.items()}}
            )
        for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
            metrics = json.loads((run / "metrics.json").read_text())
            rows.append(
                {"size": size, "seed": seed, "variant": run.name, **_row(metrics), "val_robust": _best_val_robust(run)}
            )
    return rows


def _mean_sd(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


# Hand-written analysis below this line in smalldata.md survives regeneration of the tables above it.
NOTES_MARKER = "<!-- notes: kept when the tables are regenerated -->"


def write_keeping_notes(md: Path, text: str) -> None:
    """Writes a results file's tables, keeping whatever an earlier version held below ``NOTES_MARKER``."""
    old = md.read_text() if md.is_file() else ""
    notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n"
    md.write_text(text + "\n" + NOTES_MARKER + notes)


COLUMNS = [
    "val_robust",
    "fused",
    "image_alone",
    "audio_alone",
    "text_alone",
    "without_image",
    "without_audio",
    "without_text",
]


def acceptance(rows: list[dict], size: int) -> list[str]:
    """The issue's acceptance checks on ``size`` rows per class, mean over seeds."""

    def mean(variant: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["size"] == size and r["variant"] == variant and key in r]
        return statistics.mean(values) if values else None

    lines = []
    for m in MODALITIES:
        alone, uni, nn = mean("default", f"{m}_alone"), mean(f"unimodal-{m}", "fused"), mean("raw-1nn", f"{m}_alone")
        if None in (alone, uni, nn):
            continue
        bar = max(uni, nn) - 0.03
        lines.append(
            f"- {m} alone {alone:.3f} vs max(unimodal {uni:.3f}, raw 1-NN {nn:.3f}) - 0.03 = {bar:.3f}: "
            f"{'met' if alone >= bar else 'MISSED'}"
        )
    for m in MODALITIES:
        value = mean("default", f"without_{m}")
        if value is not None:
            lines.append(f"- without {m} {value:.3f} >= 0.80: {'met' if value >= 0.80 else 'MISSED'}")
    fused = mean("default", "fused")
    singles = [mean("default", f"{m}_alone") for m in MODALITIES]
    if fused is not None and None not in singles:
        best = max(singles)
        lines.append(f"- fused {fused:.3f} >= best single {best:.3f}: {'met' if fused >= best else 'MISSED'}")
    return lines


def cmd_report(args: argparse.Namespace) -> None:
    rows = collect(args.runs)
    sizes = sorted({r["size"] for r in rows})
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (v != "default", v.startswith("unimodal"), v))
    lines = [
        "# Small-data benchmark: does every modality learn? (issue 15)",
        "",
        "User-like folders built from real MNIST and FSDD by `benchmarks/smalldata_build.py`: images at 28 px gray, "
        "48 px tinted RGB JPEG or 64 px tinted RGB PNG; speech at 8 kHz mono, 16 kHz mono or 44.1 kHz stereo; "
        "number words or short phrases with ~15 % of characters mistyped. Test: a fixed 300 rows (30 per digit, FSDD "
        "indices 0-4, MNIST test images). Validation: 10 % carved from train by the run. Test accuracy, mean ± sd "
        "over seeds; `raw-1nn` is a cosine 1-nearest-neighbour on the adapter output (pixels, log-mel, bag of bytes); "
        "`unimodal-<m>` trains the recipe's encoder for that modality alone with the same preprocessing, "
        "augmentation and budget (its `fused` column is its accuracy). `val_robust` is the best validation mean of "
        "the fused and each-alone accuracies over the epochs (the recipe's selection metric): the variants are "
        "compared on it, not on test.",
        "",
        "Variants: `default` is `manifest-joint` as shipped; the others are it plus: "
        + "; ".join(f"`{k}`: {' '.join(v)}" for k, v in VARIANTS.items() if k != "default"),
        "",
    ]
    for size in sizes:
        seeds = sorted({r["seed"] for r in rows if r["size"] == size})
        lines += [f"## {size} training rows per digit ({size * 10} rows; seeds {', '.join(map(str, seeds))})", ""]
        lines += ["| variant | n | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
        for v in variants:
            sel = [r for r in rows if r["size"] == size and r["variant"] == v]
            if not sel:
                continue
            cells = [_mean_sd([r[c] for r in sel if r.get(c) is not None]) for c in COLUMNS]
            lines.append(f"| {v} | {len(sel)} | " + " | ".join(cells) + " |")
        lines += ["", "Acceptance (issue 15, mean over seeds):", "", *acceptance(rows, size), ""]
    lines += [
        "## Provenance",
        "",
        f"- polymodal {polymodal.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} ({platform.processor() or 'cpu'}), 1 torch thread per run, written "
        f"{time.strftime('%Y-%m-%d')}",
        "- commands: `python benchmarks/smalldata.py run --runs DIR --sizes S --seeds 0 1 2 --variants default old "
        "unimodal [noaug concat ...]`, then `python benchmarks/smalldata.py report --runs DIR`",
    ]
    write_keeping_notes(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    args.results.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--sizes", type=int, nargs="+", default=[24])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["default", "old", "unimodal"])
    p.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "smalldata")
    p.set_defaults(func=cmd_report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
