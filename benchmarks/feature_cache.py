"""Epoch time of a run whose frozen encoders' features are cached, against the same run encoding them every epoch.

Run from the repository root, with a recipe (and overrides) that has at least one frozen encoder, e.g. a frozen
random-weight ViT for the embedded digits' images (nothing to download)::

    OMP_NUM_THREADS=4 python benchmarks/feature_cache.py avdigits-joint \\
        'model.encoders.image={name: hf, freeze: true, config: {model_type: vit, image_size: 28, patch_size: 7,
        num_channels: 1, hidden_size: 192, num_hidden_layers: 6, num_attention_heads: 3, intermediate_size: 768}}' \\
        trainer.epochs=3 --repeats 2 --out cache.json

The features go to a fresh temporary cache folder. A first run with ``trainer.feature_cache=auto`` fills it (the time
to compute them is reported as ``build_seconds``); then each repeat trains the run with ``auto`` (features found) and
with ``off`` (every epoch encodes), in alternating order, so that a drift of the machine's load hits both alike. The
times are the runs' own clocks (``metrics.json``'s ``timing``): an epoch is the training time plus the validation time
over the epochs; the cache's time is the ``setup`` phase, where the features are computed or found. ``ratio`` is
the median over repeats of the ``off`` epoch over the ``auto`` epoch. The test metrics of the two modes are reported
side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import polymodal


def _run(recipe: str, overrides: list[str], mode: str, out: Path) -> dict[str, Any]:
    """One run in ``mode`` (auto or off): its mean epoch time, the time the cache took, its test metrics."""
    run = polymodal.train(recipe, [*overrides, f"trainer.feature_cache={mode}", "trainer.progress=false"], out=out)
    metrics = run.metrics
    timing = metrics["timing"]
    return {
        "mode": mode,
        "epoch_seconds": (metrics["train_seconds"] + timing.get("validation", 0.0)) / metrics["epochs"],
        "cache_seconds": timing["setup"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": metrics["wall_seconds"],
        "device": metrics["device"],
        "test": metrics["test"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the recipe")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["POLYMODAL_CACHE"] = str(Path(folder) / "cache")
        runs = Path(folder) / "runs"
        first = _run(args.recipe, args.overrides, "auto", runs / "first")
        if not any((Path(folder) / "cache").rglob("*.npy")):
            sys.exit(f"{args.recipe}: no encoder of this run is frozen with unaugmented inputs: nothing was cached")
        pairs = []
        for repeat in range(args.repeats):
            modes = ("off", "auto") if repeat % 2 == 0 else ("auto", "off")
            pair = {mode: _run(args.recipe, args.overrides, mode, runs / f"{mode}-{repeat}") for mode in modes}
            pairs.append(pair)
    ratios = [p["off"]["epoch_seconds"] / p["auto"]["epoch_seconds"] for p in pairs]
    result = {
        "recipe": args.recipe,
        "overrides": args.overrides,
        "ratio": round(statistics.median(ratios), 3),
        "epoch_seconds": {
            mode: round(statistics.median(p[mode]["epoch_seconds"] for p in pairs), 3) for mode in ("auto", "off")
        },
        "build_seconds": round(first["cache_seconds"], 3),
        "lookup_seconds": round(statistics.median(p["auto"]["cache_seconds"] for p in pairs), 3),
        "test": {mode: pairs[0][mode]["test"] for mode in ("auto", "off")},
        "runs": [first, *(p[m] for p in pairs for m in p)],
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "device": first["device"],
        "command": "python benchmarks/feature_cache.py " + " ".join(sys.argv[1:]),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(
        f"epoch {result['epoch_seconds']['off']} s encoding every epoch, {result['epoch_seconds']['auto']} s from "
        f"cached features: ratio {result['ratio']} (features computed once in {result['build_seconds']} s, "
        f"found again in {result['lookup_seconds']} s)",
        file=sys.stderr,
    )
    print(text)


if __name__ == "__main__":
    main()
