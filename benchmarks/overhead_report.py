"""Writes ``results/overhead.json`` and ``results/overhead.md`` from rows printed by ``polymodal bench overhead``.

Usage:
    OMP_NUM_THREADS=1 polymodal bench overhead --model demo --steps 20 --repeats 7 > demo.json
    OMP_NUM_THREADS=1 polymodal bench overhead --model avmnist data.root=DIR --steps 20 --repeats 7 > avmnist.json
    python benchmarks/overhead_report.py demo.json avmnist.json [--load "uptime output"]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

KEYS = ("model", "trainer_step_s", "plain_step_s", "ratio", "data_wait_share")


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def command(row: dict) -> str:
    extra = " ".join(row["overrides"])
    return (
        f"OMP_NUM_THREADS={row['threads']} polymodal bench overhead --model {row['model']} "
        f"--steps {row['steps']} --repeats {row['repeats']}" + (f" {extra}" if extra else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path, nargs="+", help="JSON rows printed by `polymodal bench overhead`")
    parser.add_argument("--load", default="", help="the machine's load average while the rows were measured")
    parser.add_argument("--note", default="", help="a line added under the table (e.g. where the data came from)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = [json.loads(path.read_text()) for path in args.rows]
    meta = {
        "commands": [command(r) for r in rows],
        "seed": sorted({r["seed"] for r in rows}),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "threads": sorted({r["threads"] for r in rows}),
        "load": args.load,
        "note": args.note,
        "versions": {k: rows[0][k] for k in ("torch", "numpy", "python")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # A plain list of rows (the format), each carrying the run's provenance.
    rows_out = [{**row, **{k: v for k, v in meta.items() if k not in row}} for row in rows]
    (args.out / "overhead.json").write_text(json.dumps(rows_out, indent=2) + "\n")
    lines = [
        "# Trainer overhead against a plain PyTorch loop",
        "",
        "Same model, data, optimizer (and scheduler, gradient clipping), batch size, steps and thread count, in one",
        "process; the pair order alternates and `ratio` is the median over pairs of Trainer time / plain time.",
        "`data_wait_share` is the Trainer's time inside the dataset's `__getitem__` and collate (with",
        "`num_workers=0` that is the time blocked on the DataLoader iterator) over its total time.",
        "",
        f"Date: {meta['date']}. Hardware: {meta['cpu']}, {meta['cpu_cores']} cores, "
        f"{', '.join(map(str, meta['threads']))} torch thread(s); "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f". Seed(s): {', '.join(map(str, meta['seed']))}.",
        f"Machine load while measuring: {meta['load'] or 'not recorded'}. The pairing cancels drift in load, and",
        "`pair_ratios` in the JSON shows the spread.",
        "",
        "| " + " | ".join(KEYS) + " | pair ratios (min-max) |",
        "|" + "---|" * (len(KEYS) + 1),
        *(
            "| " + " | ".join(str(r[k]) for k in KEYS) + f" | {min(r['pair_ratios'])}-{max(r['pair_ratios'])} |"
            for r in rows
        ),
        "",
        *([meta["note"], ""] if meta["note"] else []),
        "Commands:",
        "",
        *(f"    {c}" for c in meta["commands"]),
        "",
    ]
    (args.out / "overhead.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
