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
``round_robin``: one task per batch, the tasks in turn), counted by drawing the joint run's batches again
(``epoch_order`` and ``task_batches``: the Trainer's shuffle and the multitask strategy's single-task batches, in
plain PyTorch). So every task
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

import polymodal

RECIPE = "multimodel-digits"
LOW_DATA_TASKS = ("parse",)  # the task whose training examples data.low_data_examples sets
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


def recipe_tasks() -> tuple[list[str], int]:
    """The recipe's task names (in task-id order) and its training examples of the low-data task."""
    data = polymodal.load_data(RECIPE, [f"data.tasks=[{LOW_DATA_TASKS[0]}]"])
    return [spec.name for spec in data.tasks], len(data.train)


def summary_table(rows: list[dict], tasks: list[str], key: str = "value") -> str:
    """Markdown table of one study: per task (in the order of ``tasks``) and setting, mean ± sd over seeds and each
    seed's ``key`` value."""
    settings = [s for s in ORDER if any(r["setting"] == s for r in rows)]
    lines = ["| task (metric, train examples) | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for name in tasks:
        first = next((r for r in rows if r["task"] == name), None)
        if first is None:
            continue
        cells = [_cell([r[key] for r in rows if r["task"] == name and r["setting"] == setting]) for setting in settings]
        low = ", low-data" if first["low_data"] else ""
        lines.append(f"| {name} ({first['metric']}, {first['train_examples']}{low}) | " + " | ".join(cells) + " |")
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


def report(rows: list[dict], tasks: list[str]) -> str:
    studies = list(dict.fromkeys(r["study"] for r in rows))
    parts = []
    for study in studies:
        chosen = [r for r in rows if r["study"] == study]
        for key, what in (("value", "test"), ("val_value", "validation")):
            parts.append(f"### {study}: {what}\n\n{summary_table(chosen, tasks, key)}\n")
    return "\n".join(parts)


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which the Trainer draws ``size`` training samples in ``epoch`` (a shuffle of (seed, epoch))."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def task_batches(tasks: torch.Tensor, batch_size: int, seed: int, epoch: int, mode: str) -> list[list[int]]:
    """The single-task batches of ``epoch`` that the multitask strategy draws (``round_robin`` or ``proportional``):
    each task's examples shuffled into batches; ``proportional`` shuffles all the batches together, ``round_robin``
    takes the tasks in turn (a task that runs out starts again on a fresh shuffle)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    members = {int(t): (tasks == t).nonzero().flatten() for t in tasks.unique()}

    def batches_of(rows: torch.Tensor) -> list[list[int]]:
        order = rows[torch.randperm(len(rows), generator=generator)].tolist()
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    per_task = {t: batches_of(rows) for t, rows in sorted(members.items())}
    total = sum(len(b) for b in per_task.values())
    if mode == "proportional":
        flat = [batch for batches in per_task.values() for batch in batches]
        return [flat[i] for i in torch.randperm(total, generator=generator).tolist()]
    queues = {t: list(b) for t, b in per_task.items()}
    out: list[list[int]] = []
    while len(out) < total:
        for task in per_task:
            if not queues[task]:
                queues[task] = batches_of(members[task])
            out.append(queues[task].pop(0))
    return out[:total]


def task_updates(tasks: torch.Tensor, names: list[str], sampling: str, seed: int, epochs: int) -> dict[str, int]:
    """Optimizer updates each task (``names`` by task id) gets in a joint run: the batches it appears in."""
    counts = torch.zeros(len(names), dtype=torch.long)
    for epoch in range(epochs):
        if sampling == "mixed":
            order = epoch_order(len(tasks), seed, epoch)
            for start in range(0, len(order), BATCH):
                counts[tasks[order[start : start + BATCH]].unique()] += 1
        else:
            for batch in task_batches(tasks, BATCH, seed, epoch, sampling):
                counts[tasks[batch[0]]] += 1
    return {name: int(counts[i]) for i, name in enumerate(names)}


def train(overrides: list[str], out: Path) -> tuple[dict, float]:
    """Trains one run, or reads back a finished one in ``out`` (wall time 0) trained with the same overrides."""
    done = out / "metrics.json"
    if done.is_file() and json.loads((out / "overrides.json").read_text()) == overrides:
        return json.loads(done.read_text()), 0.0
    started = time.perf_counter()
    metrics = polymodal.train(RECIPE, overrides, out=out).metrics
    (out / "overrides.json").write_text(json.dumps(overrides))
    return metrics, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/multimodel-runs"))
    parser.add_argument("--settings", nargs="+", default=["joint", "alone", "joint-no-moe", "joint-no-attention"])
    parser.add_argument("--alone-tasks", nargs="+", help="tasks to train alone (default: every task)")
    parser.add_argument("--sampling", choices=["mixed", "round_robin", "proportional"], default="mixed")
    parser.add_argument("--epochs", type=int, help="the joint runs' trainer.epochs (default: the recipe's)")
    parser.add_argument("--low-data-examples", type=int, help="data.low_data_examples (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscribing shared CPUs)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON rows file (appended to)")
    parser.add_argument("--report", action="store_true", help="print the summary tables of the results and exit")
    parser.add_argument("--overrides", nargs="+", default=[], help="overrides of every run (a smaller budget)")
    args = parser.parse_args()
    tasks, recipe_low = recipe_tasks()
    if args.report:
        print(report(json.loads(args.results.read_text()), tasks))
        return
    torch.set_num_threads(args.threads)
    rows = json.loads(args.results.read_text()) if args.results.is_file() else []
    recipe_epochs = polymodal.load_config(RECIPE).trainer.epochs
    low, epochs = args.low_data_examples or recipe_low, args.epochs or recipe_epochs
    study = study_name(args.sampling, low, epochs)
    base = [f"data.root={args.root}", "trainer.progress=false", *args.overrides]
    # Only what differs from the recipe, so the recipe's own setting keeps its shipped command lines.
    if low != recipe_low:
        base.append(f"data.low_data_examples={low}")
    joint_base = [f"strategy.sampling={args.sampling}"] if args.sampling != "mixed" else []
    joint_base += [f"trainer.epochs={epochs}"] if epochs != recipe_epochs else []
    recipe = study == study_name("mixed", recipe_low, recipe_epochs)
    tag = "" if recipe else f"{args.sampling}-n{low}-e{epochs}-"
    for seed in args.seeds:
        updates: dict[str, int] | None = None
        train_counts: dict[str, int] = {}
        for setting in args.settings:
            if setting in ("alone", "alone-same-epochs"):
                if updates is None:
                    raise SystemExit(f"{setting} needs the joint run of the same seed first (its updates, its data)")
                for name in args.alone_tasks or tasks:
                    per_epoch = math.ceil(train_counts[name] / BATCH)
                    alone = max(1, round(updates[name] / per_epoch)) if setting == "alone" else epochs
                    overrides = [*base, f"trainer.seed={seed}", f"data.tasks=[{name}]", f"trainer.epochs={alone}"]
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
                task_ids = _train_tasks(run_dir)
                train_counts = {name: int((task_ids == i).sum()) for i, name in enumerate(tasks)}
                updates = task_updates(task_ids, tasks, args.sampling, seed, metrics["epochs"])
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
    return polymodal.load_data(polymodal.load(run_dir).config).train.tasks


if __name__ == "__main__":
    main()
