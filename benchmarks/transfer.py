"""Transfer benchmark: encoders pretrained on the embedded avdigits, fine-tuned on a user's few hundred files.

Pretraining: the bundled ``avdigits-unimodal`` recipe trains the image encoder (LeNet) and, in a second run, the
audio encoder (spectrogram CNN) on the packaged avdigits train split (12,000 MNIST images / FSDD recordings), once,
seed 0, as a user would train them once and reuse them. Fine-tuning: the small-data benchmark's folders
(``smalldata_build.py``: mixed image sizes and colours, mixed sample rates, typo'd number words; a fixed 300-row
test set whose MNIST test images and FSDD takes 0-4 avdigits' train split does not contain) trained with the
bundled ``manifest-joint`` recipe, its image and audio encoders replaced by ``from_run`` encoders of the pretrained
runs (the new run adopts their input settings: 28 px gray, 8 kHz log-mel, 64 frames centred):

- ``scratch``: ``manifest-joint`` as shipped (every encoder from random weights);
- ``finetune``: image and audio from the pretrained runs, all weights trained;
- ``finetune-lr0.1``: the same at a tenth of the learning rate for the pretrained encoders (``lr_scale``);
- ``frozen``: the pretrained encoders fixed (only text, the fusion and the head train).

Selection is on the validation split carved from train (``robust_accuracy``, the recipe's); test is reported.
The report also takes the epoch-time measurements of frozen encoders with their features cached against encoding
them every epoch (``trainer.feature_cache``), ``DIR/timing-*.json`` written by ``benchmarks/feature_cache.py``.

Usage (from the repository root; the small-data folders are built from ``--shared``, default ../shared/data)::

    python benchmarks/transfer.py run --runs DIR --sizes 10 24 --seeds 0 1 2
    python benchmarks/transfer.py report --runs DIR

The timings (one torch thread; the frozen variant without audio augmentation, so both frozen encoders qualify; and a
frozen random-weight ViT of six layers, a backbone whose forward pass dominates, on the embedded digits)::

    F="{name: from_run, freeze: true"; D=DIR/data/24-0
    OMP_NUM_THREADS=1 python benchmarks/feature_cache.py manifest-joint data.train=$D/train.csv \
        data.test=$D/test.csv "data.augment={text: {}}" "model.encoders.image=$F, run: DIR/pretrain/image}" \
        "model.encoders.audio=$F, run: DIR/pretrain/audio}" --repeats 3 --out DIR/timing-transfer-frozen.json
    OMP_NUM_THREADS=1 python benchmarks/feature_cache.py avdigits-joint trainer.epochs=3 data.max_train_samples=3000 \
        "model.encoders.image={name: hf, freeze: true, config: {model_type: vit, image_size: 28, patch_size: 7,
        num_channels: 1, hidden_size: 192, num_hidden_layers: 6, num_attention_heads: 3, intermediate_size: 768}}" \
        --repeats 2 --out DIR/timing-hf-vit-frozen.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smalldata  # noqa: E402

import polymodal  # noqa: E402

PRETRAIN = {
    "image": ["strategy.modality=image", "model.encoders={image: {name: lenet, out_dim: 64}}"],
    "audio": ["strategy.modality=audio", "model.encoders={audio: {name: spec_cnn, out_dim: 64}}"],
}
PRETRAIN_SEED = 0


def _from_run(runs: Path, freeze: bool, lr_scale: float = 1.0) -> str:
    spec = ", ".join(
        f"{m}: {{name: from_run, run: {runs / 'pretrain' / m}, freeze: {str(freeze).lower()}, lr_scale: {lr_scale}}}"
        for m in PRETRAIN
    )
    return f"model.encoders={{{spec}, text: {{name: transformer, dim: 64, depth: 1}}}}"


def variants(runs: Path) -> dict[str, list[str]]:
    """Overrides of ``manifest-joint`` per variant (after the data and seed overrides)."""
    return {
        "scratch": [],
        "finetune": [_from_run(runs, freeze=False)],
        "finetune-lr0.1": [_from_run(runs, freeze=False, lr_scale=0.1)],
        "frozen": [_from_run(runs, freeze=True)],
    }


def pretrain(runs: Path, extra: Sequence[str] = ()) -> dict[str, dict]:
    """The two pretraining runs (skipped when finished); their test metrics."""
    out = {}
    for modality, overrides in PRETRAIN.items():
        folder = runs / "pretrain" / modality
        if not (folder / "metrics.json").is_file():
            if folder.exists():
                shutil.rmtree(folder)
            options = [*overrides, f"trainer.seed={PRETRAIN_SEED}", "trainer.progress=false", *extra]
            print(f"pretraining {folder}", flush=True)
            polymodal.train("avdigits-unimodal", options, out=folder)
        out[modality] = json.loads((folder / "metrics.json").read_text())
    return out


def run_one(runs: Path, size: int, seed: int, variant: str, shared: Path, extra: Sequence[str] = ()) -> dict:
    out = runs / f"{size}-{seed}" / variant
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    folder = smalldata.data_dir(runs, size, seed, shared)
    base = [f"data.train={folder / 'train.csv'}", f"data.test={folder / 'test.csv'}", f"trainer.seed={seed}"]
    options = [*base, *variants(runs)[variant], "trainer.progress=false", *extra]
    print(f"training {out}", flush=True)
    return polymodal.train("manifest-joint", options, out=out).metrics


def cmd_run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    pretrain(args.runs, args.overrides)
    for size in args.sizes:
        for seed in args.seeds:
            for variant in args.variants:
                run_one(args.runs, size, seed, variant, args.shared, args.overrides)


def collect(runs: Path) -> list[dict]:
    rows = []
    for folder in sorted(p for p in runs.glob("*-*") if p.is_dir() and p.name.split("-")[0].isdigit()):
        size, seed = (int(x) for x in folder.name.split("-"))
        for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
            metrics = json.loads((run / "metrics.json").read_text())
            row = {"size": size, "seed": seed, "variant": run.name, **smalldata._row(metrics)}
            rows.append({**row, "val_robust": smalldata._best_val_robust(run)})
    return rows


def _mean_sd(values: list[float]) -> str:
    return smalldata._mean_sd([v for v in values if v is not None])


COLUMNS = ["val_robust", *smalldata.COLUMNS[1:], "train_seconds"]


def cmd_report(args: argparse.Namespace) -> None:
    rows = collect(args.runs)
    pre = {m: json.loads((args.runs / "pretrain" / m / "metrics.json").read_text()) for m in PRETRAIN}
    files = sorted(args.runs.glob("timing-*.json"))
    timing = {p.stem.removeprefix("timing-"): json.loads(p.read_text()) for p in files}
    order = list(variants(args.runs))
    lines = [
        "# Transfer: encoders pretrained on the embedded avdigits, fine-tuned on a few hundred user files",
        "",
        __doc__.split("\n\n", 1)[1].split("Usage", 1)[0].strip(),
        "",
        "Pretrained encoders (avdigits test accuracy of the pretraining run, seed 0): "
        + ", ".join(f"{m} {pre[m]['test']['accuracy']:.3f}" for m in PRETRAIN)
        + ".",
        "",
    ]
    for size in sorted({r["size"] for r in rows}):
        seeds = sorted({r["seed"] for r in rows if r["size"] == size})
        lines += [f"## {size} training rows per digit ({size * 10} rows; seeds {', '.join(map(str, seeds))})", ""]
        lines += ["| variant | n | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
        for v in order:
            sel = [r for r in rows if r["size"] == size and r["variant"] == v]
            if sel:
                cells = [_mean_sd([r.get(c) for r in sel]) for c in COLUMNS]
                lines.append(f"| {v} | {len(sel)} | " + " | ".join(cells) + " |")
        lines.append("")
    if timing:
        lines += [
            "## Frozen features: cached vs encoded every epoch",
            "",
            "The same run with `trainer.feature_cache=auto` (a frozen encoder's train and val features computed once, "
            "then read) and `off` (encoded every epoch), repeats in alternating order; an epoch runs from its first "
            "batch to the end of its validation (median seconds); the ratio is the median over repeats of the mean "
            "`off` epoch over the mean `auto` epoch. `build` is the one-time cost of computing the features.",
            "",
            "| setting | threads | epoch, encoded (s) | epoch, cached (s) | ratio | build (s) | test acc. off / auto |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, t in timing.items():
            acc = " / ".join(f"{t['test'][m]['accuracy']:.4f}" for m in ("off", "auto"))
            lines.append(
                f"| {name} | {t['machine']['threads']} | {t['epoch_seconds']['off']:.2f} | "
                f"{t['epoch_seconds']['auto']:.2f} | **{t['ratio']:.2f}x** | {t['build_seconds']:.1f} | {acc} |"
            )
        lines += ["", *[f"- {name}: `{t['command']}`" for name, t in timing.items()], ""]
    lines += [
        "## Provenance",
        "",
        f"- polymodal {polymodal.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} ({platform.processor() or 'cpu'}), 1 torch thread per run, written "
        f"{time.strftime('%Y-%m-%d')}",
        "- commands: `python benchmarks/transfer.py run --runs DIR --sizes 10 24 --seeds 0 1 2`, the timing "
        "commands above, then `python benchmarks/transfer.py report --runs DIR`",
    ]
    smalldata.write_keeping_notes(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    payload = {"pretrain": {m: pre[m]["test"] for m in PRETRAIN}, "rows": rows, "timing": timing}
    args.results.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--sizes", type=int, nargs="+", default=[24])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["scratch", "finetune", "finetune-lr0.1", "frozen"])
    p.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "transfer")
    p.set_defaults(func=cmd_report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
