"""MultiModel experiments (issue #7): each task alone vs all tasks jointly, and joint without MoE or attention.

Run from the repository root:

    python benchmarks/multimodel.py --seeds 0 1 --out /tmp/multimodel-runs

Every setting trains the ``multimodel-digits`` recipe at the same model size. ``alone`` trains one task
(``data.tasks=[task]``) for as many batches as the joint run of the same seed (the joint run makes one update per task
present in a batch, so every task gets about that many updates either way, but alone each update has 64 examples of
the task instead of its share of a mixed batch). ``alone-same-epochs`` (optional, ``--settings joint
alone-same-epochs``) trains one task for the joint run's epochs instead: the same passes over the task's data. Rows
are appended to ``benchmarks/results/multimodel.json`` after every run, so an interrupted sweep keeps what finished;
a finished joint run in ``--out`` is reused. ``--report`` prints the summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from polymodal.config import load_config
from polymodal.data.multitask_digits import LOW_DATA_TASKS, TASKS
from polymodal.runs import train_run

RESULTS = Path(__file__).resolve().parent / "results" / "multimodel.json"
JOINT_SETTINGS = {
    "joint": [],
    "joint-no-moe": ["model.options.use_moe=false"],
    "joint-no-attention": ["model.options.use_attention=false"],
}


def rows_of(metrics: dict, setting: str, seed: int, train_counts: dict[str, int], command: str) -> list[dict]:
    return [
        {
            "task": task,
            "setting": setting,
            "seed": seed,
            "metric": score["metric"],
            "value": round(score["value"], 4),
            "train_examples": train_counts[task],
            "low_data": task in LOW_DATA_TASKS,
            "params": metrics["params"],
            "steps": metrics["steps"],
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": metrics["wall_seconds"],
            "command": command,
        }
        for task, score in metrics["tasks"].items()
    ]


def summary_table(rows: list[dict]) -> str:
    """Markdown table: per task and setting, the mean and each seed's value, plus params and mean train time."""
    order = ("alone", "alone-same-epochs", "joint", "joint-no-moe", "joint-no-attention")
    settings = [s for s in order if any(r["setting"] == s for r in rows)]
    lines = ["| task (metric, train examples) | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for spec in TASKS:
        cells = []
        for setting in settings:
            values = [r["value"] for r in rows if r["task"] == spec.name and r["setting"] == setting]
            seeds = ", ".join(f"{v:.3f}" for v in values)
            cells.append(f"**{sum(values) / len(values):.3f}** ({seeds})" if values else "-")
        first = next((r for r in rows if r["task"] == spec.name), None)
        if first is None:
            continue
        low = ", low-data" if first["low_data"] else ""
        lines.append(f"| {spec.name} ({first['metric']}, {first['train_examples']}{low}) | " + " | ".join(cells) + " |")
    for key in ("params", "steps", "train_seconds"):
        cells = []
        for setting in settings:
            runs = {
                (r["seed"], r["task"] if setting.startswith("alone") else ""): r[key]
                for r in rows
                if r["setting"] == setting
            }
            total = sum(runs.values()) / max(1, len({seed for seed, _ in runs}))
            cells.append(f"{total:,.0f}" if key != "params" else f"{max(runs.values()):,}")
        label = {
            "params": "parameters",
            "steps": "batches per seed (alone: 5 runs)",
            "train_seconds": "train seconds per seed",
        }
        lines.append(f"| {label[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train(overrides: list[str], out: Path) -> tuple[dict, float]:
    config = load_config("multimodel-digits", overrides)
    started = time.perf_counter()
    metrics = train_run(config, out)
    return metrics, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/multimodel-runs"))
    parser.add_argument("--settings", nargs="+", default=["joint", "alone", "joint-no-moe", "joint-no-attention"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscribing shared CPUs)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON rows file (appended to)")
    parser.add_argument("--report", action="store_true", help="print the summary table of the results and exit")
    args = parser.parse_args()
    if args.report:
        print(summary_table(json.loads(args.results.read_text())))
        return
    torch.set_num_threads(args.threads)
    rows = json.loads(args.results.read_text()) if args.results.is_file() else []
    base = [f"data.root={args.root}", "trainer.progress=false"]
    train_counts: dict[str, int] = {}
    for seed in args.seeds:
        joint_steps = joint_epochs = None
        for setting in args.settings:
            if setting in ("alone", "alone-same-epochs"):
                if joint_steps is None:
                    raise SystemExit(f"{setting} needs the joint run of the same seed first (its steps, its data)")
                for spec in TASKS:
                    per_epoch = math.ceil(train_counts[spec.name] / 64)
                    epochs = max(1, round(joint_steps / per_epoch)) if setting == "alone" else joint_epochs
                    overrides = [*base, f"trainer.seed={seed}", f"data.tasks=[{spec.name}]", f"trainer.epochs={epochs}"]
                    metrics, wall = train(overrides, args.out / f"{setting}-{spec.name}-s{seed}")
                    command = "polymodal train multimodel-digits " + " ".join(overrides)
                    rows += rows_of(metrics, setting, seed, train_counts, command)
                    print(f"seed {seed} {setting} {spec.name}: {metrics['tasks']} ({wall:.0f} s)", flush=True)
                    args.results.write_text(json.dumps(rows, indent=1))
                continue
            overrides = [*base, f"trainer.seed={seed}", *JOINT_SETTINGS[setting]]
            run_dir = args.out / f"{setting}-s{seed}"
            if setting == "joint" and (run_dir / "metrics.json").is_file():  # reuse a finished joint run
                metrics = json.loads((run_dir / "metrics.json").read_text())
                joint_steps, joint_epochs = metrics["steps"], metrics["epochs"]
                train_counts = _train_counts(run_dir)
                continue
            metrics, wall = train(overrides, run_dir)
            if setting == "joint":
                joint_steps, joint_epochs = metrics["steps"], metrics["epochs"]
                train_counts = _train_counts(run_dir)
            command = "polymodal train multimodel-digits " + " ".join(overrides)
            rows += rows_of(metrics, setting, seed, train_counts, command)
            print(f"seed {seed} {setting}: {json.dumps(metrics['test'])} ({wall:.0f} s)", flush=True)
            args.results.write_text(json.dumps(rows, indent=1))
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.processor() or platform.machine()}"
    )


def _train_counts(run_dir: Path) -> dict[str, int]:
    """Training examples per task of a finished run, read back from its data."""
    from polymodal.config import read_yaml, validate_config
    from polymodal.data.sources import build_data

    config = validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir))
    bundle = build_data(config.data, config.trainer.seed, False)
    tasks = torch.stack([bundle.train[i]["target"][0] for i in range(len(bundle.train))])
    return {spec.name: int((tasks == i).sum()) for i, spec in enumerate(TASKS)}


if __name__ == "__main__":
    main()
