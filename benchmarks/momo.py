"""MoMo experiments for issue 6: shared vs dual stream, staged vs one stage, simultaneous vs alternating updates.

Run from the repository root (rows are appended to a part file per method and seed; ``report`` merges them):

    OMP_NUM_THREADS=1 python benchmarks/momo.py run --seeds 0 1 [--methods shared-staged dual-staged]
    OMP_NUM_THREADS=1 python benchmarks/momo.py retime     # latency again, once nothing else trains
    python benchmarks/momo.py report
    python benchmarks/momo.py validate RUN_DIR...          # the representation metrics on the validation split

Every method is the bundled recipe ``momo-digits`` plus the overrides in ``METHODS``; ``shared-staged`` is the
recipe itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

import polymodal

RESULTS = Path(__file__).parent / "results"
RUNS = Path(os.environ.get("MOMO_RUNS", "/tmp/momo_runs"))
MNIST = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist.npz")
ONE_STAGE = "strategy.stages=[{data: [image, text, pair], objectives: [mpm, mlm, itc, itm], epochs: 12}]"
METHODS = {
    "shared-staged": [],
    # FLAVA-like: image and text towers of the recipe's depth and width, plus a fusion stack of the same depth.
    "dual-staged": ["model.options.shared=false"],
    "shared-onestage": [ONE_STAGE],
    "shared-alternating": ["strategy.updates=alternating"],
}
# Which version of the model code a row comes from (rows of an earlier version are marked so in the report).
CODE = "fusion-dual"
# The training budget of the rows (the recipe's data.max_train_samples and trainer.epochs).
PROTOCOL = "12k-12ep"
METRICS = ("image_probe_acc", "text_probe_acc", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "itm_acc")


def latency_ms(run_dir: Path, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds per sample at batch size 1: embed an image and a caption; match an image-caption pair."""
    model = polymodal.load(run_dir).model()
    image = torch.randn(1, 1, 28, 28)
    text = torch.randint(2, 258, (1, 16))
    lengths = torch.tensor([16])

    def timed(fn) -> float:
        times = []
        with torch.no_grad():
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    return {
        "latency_ms": timed(lambda: model.encode({"image": image, "text": text}, {"text": lengths})),
        "match_latency_ms": timed(lambda: model.match(image, text, lengths)),
    }


def params_used(run_dir: Path) -> int:
    """Parameters that get a gradient from one step of every objective (on a pair batch): the counted parameters
    minus any the model holds but never uses."""
    model = polymodal.load(run_dir).model().train()
    image = torch.randn(4, 1, 28, 28)
    text = torch.randint(2, 258, (4, 16))
    lengths = torch.tensor([16, 12, 8, 4])
    mask = torch.zeros(4, model.encoder.num_patches, dtype=torch.bool)
    mask[:, ::2] = True
    f = model.encode({"image": image, "text": text}, {"text": lengths})
    p = model.project(f)
    loss = sum(
        t.float().pow(2).mean()
        for t in (
            model.reconstruct_patches(image, mask),
            model.predict_tokens(text, lengths),
            model.predict_tokens(text, lengths, image),
            p["image"] @ p["text"].T * model.logit_scale.exp(),
            model.match(image, text, lengths),
            model.probes["image"](f["image"]),
            model.probes["text"](f["text"]),
        )
    )
    loss.backward()
    return sum(q.numel() for q in model.parameters() if q.grad is not None)


def run(seeds: list[int], methods: list[str], results: Path, mnist: str, extra: list[str]) -> None:
    torch.set_num_threads(1)
    results.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for method in methods:
            overrides = METHODS[method]
            out = RUNS / f"{method}-s{seed}"
            shutil.rmtree(out, ignore_errors=True)
            options = [*overrides, f"trainer.seed={seed}", "trainer.progress=false", *extra, f"data.root={mnist}"]
            started = time.perf_counter()
            metrics = polymodal.train("momo-digits", options, out=out).metrics
            row = {
                "method": method,
                "seed": seed,
                "params": metrics["params"],
                **latency_ms(out),
                **{k: metrics["representation"][k] for k in METRICS},
                "i2t_map": metrics["representation"]["i2t_map"],
                "t2i_map": metrics["representation"]["t2i_map"],
                "online_probe_val": metrics["val"]["accuracy"],
                "train_seconds": metrics["train_seconds"],
                "wall_seconds": round(time.perf_counter() - started, 1),
                "steps": metrics["steps"],
                "overrides": overrides,
                "run_dir": str(out),
                "params_used": params_used(out),
                "code": CODE,
                "protocol": PROTOCOL,
            }
            (results / f"momo.part-{method}-s{seed}.json").write_text(json.dumps(row, indent=1))
            print(json.dumps(row), flush=True)


def validate(run_dirs: list[Path]) -> None:
    """Scores finished runs' representations on their VALIDATION split (the numbers choices were made on)."""
    torch.set_num_threads(1)
    for run_dir in run_dirs:
        report = polymodal.load(run_dir).evaluate(split="val")["representation"]
        print(json.dumps({"run_dir": str(run_dir), "split": "val", **{k: round(v, 4) for k, v in report.items()}}))


def retime() -> None:
    """Re-measures every finished run's latency, interleaving methods, once no training competes for the CPU."""
    torch.set_num_threads(1)
    parts = sorted(RESULTS.glob("momo.part-*.json"))
    rows = {p: json.loads(p.read_text()) for p in parts}
    samples: dict[Path, list[dict[str, float]]] = {p: [] for p in parts}
    for _ in range(3):
        for p, row in rows.items():
            samples[p].append(latency_ms(Path(row["run_dir"])))
    for p, row in rows.items():
        for key in ("latency_ms", "match_latency_ms"):
            row[key] = statistics.median(s[key] for s in samples[p])
        p.write_text(json.dumps(row, indent=1))


def report(results: Path) -> None:
    """Merges the part files into ``momo.json`` and prints one table per training budget (``protocol``).

    ``momo.part-*`` are the rows of the current recipe; ``momo-3k.part-*`` are the earlier 3,000-sample, 8-epoch
    rows, kept for the scale comparison in ``momo.md``.
    """
    parts = sorted(results.glob("momo.part-*.json")) + sorted(results.glob("momo-3k.part-*.json"))
    rows = [json.loads(p.read_text()) for p in parts]
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    rows.sort(key=lambda r: (protocols.index(r["protocol"]), list(METHODS).index(r["method"]), r["seed"]))
    env = {
        "command": (
            "MOMO_RUNS=DIR OMP_NUM_THREADS=1 python benchmarks/momo.py run --seeds S --methods M (one seed and method "
            "per process, two processes at a time; shared-staged and dual-staged seeds 0-2, shared-onestage and "
            "shared-alternating seeds 0-1); OMP_NUM_THREADS=1 python benchmarks/momo.py retime; "
            "python benchmarks/momo.py report"
        ),
        "recipe": "momo-digits",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": 1,
    }
    earlier = (
        "OMP_NUM_THREADS=1 python benchmarks/momo.py run --seeds 0 1 --methods shared-staged dual-staged; ... run "
        "--seeds 0 1 --methods shared-onestage shared-alternating; ... run --seeds 2 --methods shared-staged "
        "dual-staged (one process at a time, recipe of 3,000 pairs and 8 epochs of 2+2+4); ... retime; ... report"
    )
    rows = [{**r, **env, **({"command": earlier} if r["protocol"] == "3k-8ep" else {})} for r in rows]
    (results / "momo.json").write_text(json.dumps(rows, indent=1))
    for protocol in protocols:
        print(f"\nprotocol {protocol}\n")
        lines = ["| method | seeds | params | latency ms | match ms | " + " | ".join(METRICS) + " |"]
        lines.append("|" + "---|" * (5 + len(METRICS)))
        for method in METHODS:
            group = [r for r in rows if r["method"] == method and r["protocol"] == protocol]
            if not group:
                continue

            def cell(key: str, scale: float = 100.0, digits: int = 1, group=group) -> str:
                values = [r[key] * scale for r in group]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

            seeds = ",".join(str(r["seed"]) for r in group)
            lines.append(
                f"| {method} | {seeds} | {group[0]['params']:,} | {cell('latency_ms', 1.0, 2)} | "
                f"{cell('match_latency_ms', 1.0, 2)} | " + " | ".join(cell(k) for k in METRICS) + " |"
            )
        print("\n".join(lines))
    print(json.dumps(env))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--mnist", default=MNIST, help="the mnist.npz of the runs (default ../shared/data/mnist)")
    p.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the part files (default results/)")
    p = sub.add_parser("validate")
    p.add_argument("run_dirs", type=Path, nargs="+")
    sub.add_parser("retime")
    p = sub.add_parser("report")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the part files and momo.json")
    args = parser.parse_args()
    {
        "run": lambda: run(args.seeds, args.methods, args.results, args.mnist, args.overrides),
        "validate": lambda: validate(args.run_dirs),
        "retime": retime,
        "report": lambda: report(args.results),
    }[args.command]()


if __name__ == "__main__":
    main()
