"""Every benchmark at a smoke size, in a temporary folder: the numbers each produces (scores, not timings).

Usage (from the repository root; ``benchmarks/results`` is not touched)::

    python benchmarks/smoke.py --write benchmarks/results/smoke_reference.json
    python benchmarks/smoke.py --compare benchmarks/results/smoke_reference.json [--only avmnist momo]

Each benchmark script runs in its own processes with tiny data and budgets (one torch thread), writing its results
files into the temporary folder; from them every number is collected except timings and machine state (seconds,
latencies, ratios of times, load, threads, versions). ``--write`` stores them as JSON; ``--compare`` reruns and
prints each number that differs from the stored one (and exits 1). Benchmarks that need data not found under
``--shared`` (MNIST, FSDD, MOSI: ``../shared/data``), or a package not installed (faiss), are skipped with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Path parts whose numbers are timings or machine state, not results.
NOT_RESULTS = re.compile(
    r"seconds|latency|wall|timing|_ms$|_s$|ratio|share|^(plain|polymodal)_epoch$|^load|threads|^date|acceptance|"
    r"cpu|startup|^import$|versions|git_commit|^command|^run_dir$"
)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Skip(Exception):
    """A benchmark that cannot run here (its data or a package is missing)."""


def numbers(value: Any, prefix: str = "") -> dict[str, float | int | bool]:
    """Every number in ``value`` (nested dicts and lists) by its dotted path, timings and machine state left out."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value} if isinstance(value, (int, float, bool)) else {}
    for key, item in items:
        if not NOT_RESULTS.search(str(key)):
            out.update(numbers(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def script(name: str, *args: Any, env: dict[str, str] | None = None, stdout: Path | None = None) -> None:
    """Runs ``benchmarks/NAME.py ARGS`` from the repository root; stops the smoke check with its output if it fails."""
    command(sys.executable, str(HERE / f"{name}.py"), *args, env=env, stdout=stdout)


def command(*argv: Any, env: dict[str, str] | None = None, stdout: Path | None = None) -> None:
    argv_ = [str(a) for a in argv]
    done = subprocess.run(
        argv_, cwd=ROOT, env={**os.environ, **ONE_THREAD, **(env or {})}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv_)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    if stdout is not None:
        stdout.write_text(done.stdout)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def need(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise Skip(f"{path} not found")


def speed_module() -> Any:
    spec = importlib.util.spec_from_file_location("speed_benchmark", HERE / "speed.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# ---------------------------------------------------------------------------------------------------------------
# One function per benchmark: runs it at a smoke size in ``work`` and returns the file(s) of results it wrote.


def avmnist(work: Path, shared: Path) -> Any:
    data = speed_module().smoke_data(work / "avmnist-data")
    script("avmnist", "--data", data, "--runs", work / "runs", "--results", work, "--methods", "late", "mla",
           "--seeds", "0", "--", "trainer.epochs=1")  # fmt: skip
    return read(work / "avmnist.json")


def exmcr(work: Path, shared: Path) -> Any:
    budget = ["trainer.epochs=1", "data.max_train_samples=600", "data.max_eval_samples=200"]
    script("exmcr", "--runs", work / "runs", "--seeds", "0", "--results", work, "--overrides", *budget)
    return read(work / "exmcr.json")


def feature_cache(work: Path, shared: Path) -> Any:
    vit = "{model_type: vit, image_size: 28, patch_size: 7, num_channels: 1, hidden_size: 32, num_hidden_layers: 1, "
    vit += "num_attention_heads: 2, intermediate_size: 64}"
    frozen = f"model.encoders.image={{name: hf, freeze: true, config: {vit}}}"
    budget = ["trainer.epochs=2", "data.max_train_samples=256", "data.max_eval_samples=200"]
    script("feature_cache", "avdigits-joint", frozen, *budget, "--repeats", "1", "--out", work / "cache.json")
    return read(work / "cache.json")


def index_bench(work: Path, shared: Path) -> Any:
    backends = ["exact"] + (["faiss-flat", "faiss-ivf"] if importlib.util.find_spec("faiss") else [])
    script("index_bench", "--sizes", "3000", "--queries", "20", "--backends", *backends, "--out", work)
    return read(work / "index.json")


def momo(work: Path, shared: Path) -> Any:
    need(shared / "mnist" / "mnist.npz")
    stages = (
        "[image], objectives: [mpm]",
        "[image, text], objectives: [mpm, mlm]",
        "[text, pair], objectives: [mlm, itc, itm]",
    )
    one_epoch_each = "strategy.stages=[" + ", ".join(f"{{data: {s}, epochs: 1}}" for s in stages) + "]"
    budget = ["data.max_train_samples=256", "data.max_eval_samples=200", "trainer.epochs=3", one_epoch_each]
    env = {"MOMO_RUNS": str(work / "runs")}
    script("momo", "run", "--seeds", "0", "--methods", "shared-staged", "dual-staged", "--mnist",
           shared / "mnist" / "mnist.npz", "--results", work, "--overrides", *budget, env=env)  # fmt: skip
    script("momo", "report", "--results", work, env=env)
    return read(work / "momo.json")


def multimodel(work: Path, shared: Path) -> Any:
    script("multimodel", "--seeds", "0", "--root", shared, "--out", work / "runs", "--results", work / "rows.json",
           "--settings", "joint", "alone", "--alone-tasks", "parse", "--epochs", "1", "--low-data-examples", "50",
           "--overrides", "data.tasks=[mnist, parse]")  # fmt: skip
    return read(work / "rows.json")


def overhead_report(work: Path, shared: Path) -> Any:
    row = work / "demo.json"
    command(sys.executable, "-m", "polymodal", "bench", "overhead", "--model", "demo", "--steps", "3", "--repeats", "1",
            stdout=row)  # fmt: skip
    script("overhead_report", row, "--out", work)
    return read(work / "overhead.json")


def selfmi(work: Path, shared: Path) -> Any:
    env = {"SELFMI_RUNS": str(work / "runs"), "MOSI_ROOT": str(shared / "mosi")}
    budget = ["trainer.epochs=1", "data.max_train_samples=256", "data.max_eval_samples=200"]
    script("selfmi", "digits", "--methods", "regression", "self_mi", "--overrides", *budget, env=env)
    parts = ["digits"]
    if (shared / "mosi" / "labels_splits.csv").is_file():
        script("selfmi", "mosi", "--methods", "self_mi", "--folds", "3", "--overrides", "trainer.epochs=1", env=env)
        script("selfmi", "mosi-text", "--overrides", "trainer.epochs=1", env=env)
        parts += ["mosi", "mosi-text"]
    else:
        print(f"selfmi: mosi parts skipped ({shared / 'mosi'} not found)", flush=True)
    script("selfmi", "report", "--results", work, env=env)
    return read(work / "selfmi.json")


def smalldata(work: Path, shared: Path) -> Any:
    need(shared / "mnist" / "mnist.npz", shared / "fsdd" / "recordings")
    script("smalldata", "run", "--runs", work / "runs", "--shared", shared, "--sizes", "4", "--seeds", "0",
           "--variants", "default", "unimodal", "--overrides", "trainer.epochs=2")  # fmt: skip
    script("smalldata", "report", "--runs", work / "runs", "--results", work / "smalldata")
    rows = read(work / "smalldata.json")
    # The raw-1nn row is the default run's diagnosis reference, which metrics.json keeps to 4 decimals.
    return [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} if r["variant"] == "raw-1nn" else r
        for r in rows
    ]


def speed(work: Path, shared: Path) -> Any:
    script("speed", "--smoke", "--repeats", "1", "--out", work)
    return read(work / "speed.json")


def transfer(work: Path, shared: Path) -> Any:
    need(shared / "mnist" / "mnist.npz", shared / "fsdd" / "recordings")
    budget = ["trainer.epochs=1", "data.max_train_samples=512", "data.max_eval_samples=200"]
    script("transfer", "run", "--runs", work / "runs", "--shared", shared, "--sizes", "4", "--seeds", "0",
           "--variants", "scratch", "finetune", "frozen", "--overrides", *budget)  # fmt: skip
    script("transfer", "report", "--runs", work / "runs", "--results", work / "transfer")
    return read(work / "transfer.json")


BENCHMARKS: dict[str, Callable[[Path, Path], Any]] = {
    f.__name__: f
    for f in (
        avmnist, exmcr, feature_cache, index_bench, momo, multimodel, overhead_report, selfmi, smalldata, speed,
        transfer,
    )
}  # fmt: skip


def differences(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> list[str]:
    """One line per number that is not the same (beyond ``tolerance``), missing, or new."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            lines.append(f"{key}: {a} -> {b}")
        elif a != b and not (isinstance(a, float | int) and math.isclose(a, b, rel_tol=0, abs_tol=tolerance)):
            lines.append(f"{key}: {a} -> {b}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="store the numbers in this JSON file")
    mode.add_argument("--compare", type=Path, help="compare the numbers with this JSON file (exit 1 if any differ)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="these benchmarks only")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="MNIST, FSDD, MOSI")
    parser.add_argument("--tolerance", type=float, default=0.0, help="absolute difference accepted (default 0)")
    args = parser.parse_args()
    stored = read(args.compare) if args.compare else {}
    results: dict[str, Any] = {}
    failed = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="polymodal-smoke-") as tmp:
        for name in args.only or BENCHMARKS:
            work = Path(tmp) / name
            work.mkdir()
            began = time.perf_counter()
            try:
                results[name] = numbers(BENCHMARKS[name](work, args.shared.resolve()))
            except Skip as why:
                print(f"{name}: skipped ({why})", flush=True)
                continue
            except RuntimeError as err:
                print(f"{name}: FAILED\n{err}", flush=True)
                failed.append(name)
                continue
            print(f"{name}: {len(results[name])} numbers ({time.perf_counter() - began:.0f} s)", flush=True)
    if args.write:
        args.write.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {args.write} ({time.perf_counter() - started:.0f} s)")
        return 1 if failed else 0
    bad = failed[:]
    for name, new in results.items():
        if name not in stored:
            print(f"{name}: not in {args.compare}")
            bad.append(name)
            continue
        lines = differences(stored[name], new, args.tolerance)
        print(f"{name}: {'the same' if not lines else f'{len(lines)} numbers differ'} ({len(new)} compared)")
        for line in lines:
            print(f"  {line}")
        if lines:
            bad.append(name)
    print(f"{'differences in: ' + ', '.join(bad) if bad else 'all the same'} ({time.perf_counter() - started:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
