"""MultiModel experiments (issue #7): each task alone vs all tasks jointly, and joint without MoE or attention.

Run from the repository root:

    python benchmarks/multimodel.py --seeds 0 1 2 --out /tmp/multimodel-runs
    python benchmarks/multimodel.py --seeds 0 1 2 --settings joint alone --sampling round_robin --epochs 16 \\
        --low-data-examples 100

Every setting trains the ``multimodel-digits`` recipe at the same model size; ``--sampling``, ``--epochs`` and
``--low-data-examples`` override ``strategy.sampling``, the joint run's ``trainer.epochs`` and
``data.low_data_examples`` (default: the recipe's mixed batches, 3 epochs, 300 ``parse`` examples). ``alone`` trains
one task (``data.tasks=[task]``) in batches of 64 of that task, as many as the joint run of the same seed made updates
on the task: a joint batch makes one update per task present in it (``mixed``: nearly every task in every batch;
``round_robin``: one task per batch, the tasks in turn), counted by replaying the joint run's sampler. So every task
gets about as many updates either way, the paper's "similar number of steps" per task; in ``mixed`` a joint update
holds only the task's share of a batch, in ``round_robin`` 64 examples of the task as alone. ``alone-same-epochs``
(optional) trains one task for the joint run's epochs instead: the same passes over the task's data.

Rows are appended to ``--results`` after every run (an interrupted sweep keeps what finished); a finished run in
``--out`` is reused. Each row has ``study`` (sampling, low-data examples, joint epochs), the test ``value`` and the
validation ``val_value`` of the selected weights. ``--report`` prints one summary table per study.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from polymodal.config import load_config
from polymodal.data.multitask_digits import LOW_DATA_TASKS, PARSE_TRAIN, TASKS
from polymodal.data.task_sampling import TaskBatchSampler
from polymodal.runs import train_run
from polymodal.training.trainer import EpochSampler

RESULTS = Path(__file__).resolve().parent / "results" / "multimodel.json"
BATCH = 64  # the recipe's data.batch_size
JOINT_SETTINGS = {
    "joint": [],
    "joint-no-moe": ["model.options.use_moe=false"],
    "joint-no-attention": ["model.options.use_attention=false"],
}
ORDER = ("alone", "alone-same-epochs", "joint", "joint-no-moe", "joint-no-attention")


def study_name(sampling: str, low_data_examples: int, epochs: int) -> str:
    return f"{sampling}, parse {low_data_examples}, joint {epochs} epochs"


def rows_of(metrics: dict, setting: str, seed: int, train_counts: dict[str, int], study: str, command: str) -> list:
    return [
        {
            "task": task,
            "setting": setting,
            "seed": seed,
            "metric": score["metric"],
            "value": round(score["value"], 4),
            "val_value": round(metrics["val"][f"{task}_{score['metric']}"], 4),
            "train_examples": train_counts[task],
            "low_data": task in LOW_DATA_TASKS,
            "study": study,
            "params": metrics["params"],
            "steps": metrics["steps"],
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": metrics["wall_seconds"],
            "command": command,
        }
        for task, score in metrics["tasks"].items()
    ]


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"**{statistics.mean(values):.3f}**{sd} ({', '.join(f'{v:.3f}' for v in values)})"


def summary_table(rows: list[dict], key: str = "value") -> str:
    """Markdown table of one study: per task and setting, mean ± sd over seeds and each seed's ``key`` value."""
    settings = [s for s in ORDER if any(r["setting"] == s for r in rows)]
    lines = ["| task (metric, train examples) | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for spec in TASKS:
        first = next((r for r in rows if r["task"] == spec.name), None)
        if first is None:
            continue
        cells = [
            _cell([r[key] for r in rows if r["task"] == spec.name and r["setting"] == setting]) for setting in settings
        ]
        low = ", low-data" if first["low_data"] else ""
        lines.append(f"| {spec.name} ({first['metric']}, {first['train_examples']}{low}) | " + " | ".join(cells) + " |")
    for field in ("params", "steps", "train_seconds"):
        cells = []
        for setting in settings:
            runs = {
                (r["seed"], r["task"] if setting.startswith("alone") else ""): r[field]
                for r in rows
                if r["setting"] == setting
            }
            total = sum(runs.values()) / max(1, len({seed for seed, _ in runs}))
            cells.append(f"{total:,.0f}" if field != "params" else f"{max(runs.values()):,}")
        label = {
            "params": "parameters",
            "steps": "batches per seed (alone: all its runs)",
            "train_seconds": "train seconds per seed",
        }
        lines.append(f"| {label[field]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(rows: list[dict]) -> str:
    studies = list(dict.fromkeys(r["study"] for r in rows))
    parts = []
    for study in studies:
        chosen = [r for r in rows if r["study"] == study]
        for key, what in (("value", "test"), ("val_value", "validation")):
            parts.append(f"### {study}: {what}\n\n{summary_table(chosen, key)}\n")
    return "\n".join(parts)


def task_updates(tasks: torch.Tensor, sampling: str, seed: int, epochs: int) -> dict[str, int]:
    """Optimizer updates each task gets in a joint run: the batches it appears in, replaying the run's sampler."""
    counts = torch.zeros(len(TASKS), dtype=torch.long)
    if sampling == "mixed":
        sampler = EpochSampler(len(tasks), seed)
        for epoch in range(epochs):
            sampler.set_position(epoch, 0)
            order = torch.tensor(list(sampler))
            for start in range(0, len(order), BATCH):
                counts[tasks[order[start : start + BATCH]].unique()] += 1
    else:
        batches = TaskBatchSampler(tasks, BATCH, seed, sampling)
        for epoch in range(epochs):
            batches.set_position(epoch, 0)
            for batch in batches:
                counts[tasks[batch[0]]] += 1
    return {spec.name: int(counts[i]) for i, spec in enumerate(TASKS)}


def train(overrides: list[str], out: Path) -> tuple[dict, float]:
    """Trains one run, or reads back a finished one in ``out`` (wall time 0) trained with the same overrides."""
    done = out / "metrics.json"
    if done.is_file() and json.loads((out / "overrides.json").read_text()) == overrides:
        return json.loads(done.read_text()), 0.0
    config = load_config("multimodel-digits", overrides)
    started = time.perf_counter()
    metrics = train_run(config, out)
    (out / "overrides.json").write_text(json.dumps(overrides))
    return metrics, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/multimodel-runs"))
    parser.add_argument("--settings", nargs="+", default=["joint", "alone", "joint-no-moe", "joint-no-attention"])
    parser.add_argument("--alone-tasks", nargs="+", default=[t.name for t in TASKS], help="tasks to train alone")
    parser.add_argument("--sampling", choices=["mixed", "round_robin", "proportional"], default="mixed")
    parser.add_argument("--epochs", type=int, default=3, help="the joint runs' trainer.epochs (recipe: 3)")
    parser.add_argument("--low-data-examples", type=int, default=PARSE_TRAIN, help="data.low_data_examples")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscribing shared CPUs)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON rows file (appended to)")
    parser.add_argument("--report", action="store_true", help="print the summary tables of the results and exit")
    parser.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.results.read_text())))
        return
    torch.set_num_threads(args.threads)
    rows = json.loads(args.results.read_text()) if args.results.is_file() else []
    study = study_name(args.sampling, args.low_data_examples, args.epochs)
    base = [f"data.root={args.root}", "trainer.progress=false", *args.overrides]
    # Only what differs from the recipe, so the recipe's own setting keeps its shipped command lines.
    if args.low_data_examples != PARSE_TRAIN:
        base.append(f"data.low_data_examples={args.low_data_examples}")
    joint_base = [f"strategy.sampling={args.sampling}"] if args.sampling != "mixed" else []
    joint_base += [f"trainer.epochs={args.epochs}"] if args.epochs != 3 else []
    recipe = study == study_name("mixed", PARSE_TRAIN, 3)
    tag = "" if recipe else f"{args.sampling}-n{args.low_data_examples}-e{args.epochs}-"
    for seed in args.seeds:
        updates: dict[str, int] | None = None
        train_counts: dict[str, int] = {}
        for setting in args.settings:
            if setting in ("alone", "alone-same-epochs"):
                if updates is None:
                    raise SystemExit(f"{setting} needs the joint run of the same seed first (its updates, its data)")
                for name in args.alone_tasks:
                    per_epoch = math.ceil(train_counts[name] / BATCH)
                    epochs = max(1, round(updates[name] / per_epoch)) if setting == "alone" else args.epochs
                    overrides = [*base, f"trainer.seed={seed}", f"data.tasks=[{name}]", f"trainer.epochs={epochs}"]
                    metrics, wall = train(overrides, args.out / f"{tag}{setting}-{name}-s{seed}")
                    command = "polymodal train multimodel-digits " + " ".join(overrides)
                    rows = _put(rows, rows_of(metrics, setting, seed, train_counts, study, command))
                    print(f"seed {seed} {setting} {name}: {metrics['tasks'][name]['value']:.3f} ({wall:.0f} s)")
                    args.results.write_text(json.dumps(rows, indent=1))
                continue
            overrides = [*base, *joint_base, f"trainer.seed={seed}", *JOINT_SETTINGS[setting]]
            run_dir = args.out / f"{tag}{setting}-s{seed}"
            metrics, wall = train(overrides, run_dir)
            if setting == "joint":
                tasks = _train_tasks(run_dir)
                train_counts = {spec.name: int((tasks == i).sum()) for i, spec in enumerate(TASKS)}
                updates = task_updates(tasks, args.sampling, seed, metrics["epochs"])
                print(f"seed {seed} joint: updates per task {updates}")
            command = "polymodal train multimodel-digits " + " ".join(overrides)
            rows = _put(rows, rows_of(metrics, setting, seed, train_counts, study, command))
            print(f"seed {seed} {setting}: {json.dumps(metrics['test'])} ({wall:.0f} s)", flush=True)
            args.results.write_text(json.dumps(rows, indent=1))
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.processor() or platform.machine()}"
    )


def _put(rows: list[dict], new: list[dict]) -> list[dict]:
    """``rows`` with ``new`` in place of any row of the same study, setting, seed and task (a rerun or reused run)."""
    keys = {(r["study"], r["setting"], r["seed"], r["task"]) for r in new}
    return [r for r in rows if (r.get("study"), r["setting"], r["seed"], r["task"]) not in keys] + new


def _train_tasks(run_dir: Path) -> torch.Tensor:
    """Task id of every training example of a finished run, in dataset order, read back from its data."""
    from polymodal.config import validate_config
    from polymodal.data.sources import build_data
    from polymodal.recipe_files import read_yaml

    config = validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir))
    return build_data(config.data, config.trainer.seed, False).train.tasks


if __name__ == "__main__":
    main()
