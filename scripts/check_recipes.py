"""Runs every bundled recipe briefly through the command line, from a fresh temporary working directory.

For each recipe of ``polymodal recipes`` it runs ``python -m polymodal train RECIPE trainer.epochs=1
data.max_train_samples=500 --out TMP`` (``bridge`` for bridge recipes; a recipe with ``strategy.stages`` runs each
stage for one epoch) and prints one line: status, seconds, recipe, detail. Recipes on embedded data run as they
are; ``manifest`` recipes run on a small generated CSV manifest; recipes that need the user's data are skipped with
the reason unless ``--data-root`` gives it, and those that need the user's pretrained models (their ``# Data:`` line
names model directories) are skipped. A recipe's ``# Pretrain:`` commands (the earlier runs its ``from_run`` encoders
reuse) run first in the same directory, as briefly. Exits 1 if any run fails.

    python scripts/check_recipes.py [--jobs 2] [--only RECIPE ...] [--data-root selfmi-mosi=DIR] [-- OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

import polymodal
from polymodal.recipes import EMBEDDED, bundled_recipes, recipe_data, recipe_pretrain

QUICK = ("trainer.epochs=1", "data.max_train_samples=500", "trainer.progress=false")
SOURCE = str(Path(polymodal.__file__).resolve().parents[1])  # the children import the same polymodal as this script
USER_MODELS = "model directories"  # in a Data line: the recipe needs the user's pretrained model folders
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_manifest(folder: Path, name: str, rows: int, seed: int) -> Path:
    """A CSV manifest of ``rows`` samples (row r is digit r % 10): a noisy digit-dependent PNG, tone WAV and word."""
    rng = np.random.default_rng(seed)
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    lines = ["image,audio,text,label"]
    for r in range(rows):
        digit, stem = r % 10, f"{Path(name).stem}_{r}"
        pixels = rng.integers(0, 64, (28, 28)).astype(np.uint8)
        pixels[2 * digit : 2 * digit + 8, 4:24] = 255  # a bar whose height marks the digit
        Image.fromarray(pixels, mode="L").save(files / f"{stem}.png")
        t = np.arange(4000) / 8000.0
        tone = 0.3 * np.sin(2 * np.pi * (200 + 100 * digit) * t) + 0.02 * rng.standard_normal(t.size)
        with wave.open(str(files / f"{stem}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes((tone * 32767).astype("<i2").tobytes())
        lines.append(f"files/{stem}.png,files/{stem}.wav,{WORDS[digit]},{digit}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quick_stages(recipe: dict) -> list[str]:
    """Overrides that run every stage of a recipe's ``strategy.stages`` for one epoch (stages must fit the run)."""
    stages = (recipe.get("strategy") or {}).get("stages")
    if not stages:
        return []
    return [f"strategy.stages={json.dumps([{**s, 'epochs': 1} for s in stages])}", f"trainer.epochs={len(stages)}"]


def plan(name: str, path: Path, roots: dict[str, str], workdir: Path) -> tuple[str, list[str], str] | str:
    """(command, data and stage overrides, what data it runs on) for a recipe, or the reason it is skipped."""
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    command = "bridge" if "spaces" in recipe else "train"
    data_name = recipe.get("data", {}).get("name", "avdigits")
    root = roots.get(name, roots.get(data_name))
    stages = quick_stages(recipe)
    if root is not None:
        return command, [*stages, f"data.root={Path(root).resolve()}"], f"data.root={root}"
    needs = recipe_data(path)
    if USER_MODELS in needs:
        return f"needs {needs}"
    if data_name == "manifest":
        train = write_manifest(workdir, "train.csv", 60, seed=0)
        test = write_manifest(workdir, "test.csv", 20, seed=1)
        return command, [*stages, f"data.train={train}", f"data.test={test}"], "generated CSV manifests"
    if not needs.startswith(EMBEDDED):
        return f"needs {needs}; give --data-root {name}=DIR"
    return command, stages, needs


def run(name: str, path: Path, roots: dict[str, str], extra: list[str], timeout: float) -> tuple[str, float, str]:
    """(status, seconds, detail) of one recipe, run from its own temporary working directory."""
    with tempfile.TemporaryDirectory(prefix=f"check-{name}-") as tmp:
        workdir = Path(tmp)
        planned = plan(name, path, roots, workdir)
        if isinstance(planned, str):
            return "skip", 0.0, planned
        command, overrides, data = planned
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")]))}
        main = [command, name, *QUICK, *overrides, *extra, "--out", "run"]
        pretrain = [[*args[:2], *QUICK, *args[2:]] for args in recipe_pretrain(path)]  # QUICK before --out
        start = time.monotonic()
        for args in [*pretrain, main]:
            argv = [sys.executable, "-m", "polymodal", *args]
            try:
                done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "FAIL", time.monotonic() - start, f"timed out after {timeout:.0f} s: {' '.join(args[:2])}"
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
                return "FAIL", time.monotonic() - start, f"exit {done.returncode}: {' '.join(args[:2])}: {last}"
        seconds = time.monotonic() - start
        after = f" after {len(pretrain)} pretraining runs" if pretrain else ""
        return "ok", seconds, f"polymodal {command} on {data}{after}"


def parse_roots(pairs: list[str]) -> dict[str, str]:
    roots = {}
    for pair in pairs:
        name, sep, root = pair.partition("=")
        if not sep or not name or not root:
            sys.exit(f"--data-root: expected NAME=DIR (a recipe or data.name), got {pair!r}")
        roots[name] = root
    return roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="RECIPE", help="check only these recipes")
    parser.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="your data for a recipe or a data.name (e.g. selfmi-mosi=mosi or mosi=mosi); repeatable",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per recipe (default 600)")
    parser.add_argument("--jobs", type=int, default=1, help="recipes run at once (default 1; one torch thread each)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run, after --")
    args = parser.parse_args(argv)
    recipes = bundled_recipes()
    unknown = sorted(set(args.only or ()) - set(recipes))
    if unknown:
        sys.exit(f"--only: unknown recipes {unknown} (see `polymodal recipes`)")
    roots = parse_roots(args.data_root)
    names = sorted(args.only or recipes)
    width = max(len(n) for n in names)
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # each run is its own process
        results = pool.map(lambda n: run(n, recipes[n], roots, args.overrides, args.timeout), names)
        for name, (status, seconds, detail) in zip(names, results, strict=True):
            failed += status == "FAIL"
            print(f"{status:<4} {seconds:6.1f} s  {name:<{width}}  {detail}", flush=True)
    print(f"{len(names)} recipes: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
