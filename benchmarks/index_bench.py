"""Build and query time of the embedding index backends on random unit vectors, and recall@10 against exact search.

Usage:
    python benchmarks/index_bench.py [--sizes 10000 1000000] [--dim 128] [--queries 100] [--out benchmarks/results]

Writes ``index.json`` (rows: backend, n_vectors, dim, build_s, query_ms, recall_at_10) and ``index.md`` to ``--out``.
``query_ms`` is the time of one batched search of ``--queries`` queries divided by their number. Random Gaussian
vectors are the hardest case for an approximate index (no cluster structure), so recall there is a lower bound.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import polymodal


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)]))


def ivf_setting(row: dict) -> str:
    return f"{row['nlist']} / {row['nprobe']}" if "nprobe" in row else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backends", nargs="+", default=["exact", "faiss-flat", "faiss-ivf"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    faiss = importlib.import_module("faiss") if any(b.startswith("faiss") for b in args.backends) else None
    rows = []
    rng = np.random.default_rng(args.seed)
    for n in args.sizes:
        gallery = rng.standard_normal((n, args.dim), dtype=np.float32)
        queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        ids = [str(i) for i in range(n)]
        truth = None
        for backend in args.backends:
            started = time.perf_counter()
            index = polymodal.EmbeddingIndex(gallery, ids, "features", backend)
            build = time.perf_counter() - started
            # IVF: the default nprobe, and fewer and more cells visited (a search-time setting, no rebuild).
            nprobes = sorted({index.nprobe, 8, index.nlist // 2}) if backend == "faiss-ivf" else [index.nprobe]
            for nprobe in nprobes:
                index.nprobe = nprobe
                index.search(queries[:1], 10)  # first call pays one-time set-up
                started = time.perf_counter()
                _, found = index.search(queries, 10)
                query_ms = (time.perf_counter() - started) * 1000 / len(queries)
                if truth is None:
                    truth = found  # the first backend is exact
                row = {
                    "backend": backend,
                    "n_vectors": n,
                    "dim": args.dim,
                    "build_s": round(build, 3),
                    "query_ms": round(query_ms, 3),
                    "recall_at_10": round(recall_at(found, truth), 4),
                }
                if backend == "faiss-ivf":
                    row.update(nlist=index.nlist, nprobe=nprobe)
                print(json.dumps(row), flush=True)
                rows.append(row)
            del index
    meta = {
        "command": ("OMP_NUM_THREADS=" + os.environ["OMP_NUM_THREADS"] + " " if "OMP_NUM_THREADS" in os.environ else "")
        + "python benchmarks/index_bench.py "
        + " ".join(["--sizes", *map(str, args.sizes), "--dim", str(args.dim), "--queries", str(args.queries)]),
        "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads() if faiss else None,
        "versions": {
            "faiss": faiss.__version__ if faiss else None,
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "python": platform.python_version(),
        "query_batch": args.queries,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # A plain list of rows (the format), each carrying the run's provenance.
    rows_out = [{**row, **{k: v for k, v in meta.items() if k not in row}} for row in rows]
    (args.out / "index.json").write_text(json.dumps(rows_out, indent=2) + "\n")
    lines = [
        "# Embedding index: build and query time, recall@10 against exact search",
        "",
        f"Command: `{meta['command']}` (seed {meta['seed']}), {meta['date']}.",
        f"Hardware: {meta['cpu']}, {meta['cpu_cores']} cores, {meta['torch_threads']} torch threads, "
        f"{meta['faiss_threads']} faiss threads; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f", Python {meta['python']}.",
        f"Vectors: standard Gaussian, unit-normalised; query_ms = one batched search of {args.queries} queries / "
        f"{args.queries}. The machine was shared with other jobs, so times are upper bounds.",
        "",
        "| backend | n_vectors | dim | build_s | query_ms | recall_at_10 | nlist / nprobe |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['backend']} | {r['n_vectors']:,} | {r['dim']} | {r['build_s']} | {r['query_ms']} | "
            f"{r['recall_at_10']} | {ivf_setting(r)} |"
            for r in rows
        ),
        "",
    ]
    (args.out / "index.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
