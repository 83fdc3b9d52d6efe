"""The ``polymodal`` command line: parses arguments, loads and validates recipes, calls library functions.

Known errors (bad input, bad config) are printed as one line and exit with status 2; no training logic lives here.
Library modules are imported inside the commands that need them, so that ``--help``, ``--version``, ``recipes``,
usage errors and errors in a recipe file answer without importing torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal import __version__
from polymodal.allocator import keep_freed_memory
from polymodal.errors import PolymodalError

if TYPE_CHECKING:
    from polymodal.config import RunConfig

DEMO_RECIPE = "avdigits-joint"
# A confusion matrix with more classes than this is left to ``eval --json``.
MAX_TABLE_CLASSES = 20


def _default_out(recipe: str) -> Path:
    return Path("runs") / f"{Path(recipe).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _import_modules(names: list[str]) -> None:
    """Imports the modules given with ``--import`` (they register custom components), from the working directory
    too, as ``python -m`` would."""
    import importlib

    if names and "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise PolymodalError(f"--import {name}: cannot import it ({err})") from None


def _load_config(recipe: str, overrides: list[str], imports: list[str]) -> RunConfig:
    from polymodal.recipe_files import read_recipe

    raw, source = read_recipe(recipe, overrides)  # a missing file or bad YAML fails before torch is imported
    from polymodal.config import validate_config

    config = validate_config(raw, source)
    config.imports = list(dict.fromkeys([*imports, *config.imports]))  # the run records them in config.yaml
    return config


def _train(recipe: str | None, overrides: list[str], out: str | None, resume: bool, imports: list[str]) -> dict:
    if resume and not out:
        raise PolymodalError("--resume needs --out RUN_DIR (the run to continue)")
    if recipe:
        config = _load_config(recipe, overrides, imports)
        run_dir = Path(out) if out else _default_out(recipe)
    elif resume and out:  # --resume alone reads the run's own config.yaml
        from polymodal.runs.rundir import saved_config

        run_dir = Path(out)
        config = saved_config(run_dir, overrides)
    else:
        raise PolymodalError("train: give a RECIPE (see `polymodal recipes`), or --resume --out RUN_DIR")
    from polymodal.runs.train import train_run
    from polymodal.training.distributed import current_world

    if current_world().active and not out:
        # A default name holds the time, which could differ between ranks.
        raise PolymodalError("under torchrun, give --out RUN_DIR (every rank must name the same run directory)")
    metrics = train_run(config, run_dir, resume=resume)
    if current_world().is_main:
        print(f"run directory: {run_dir}")
    return metrics


def _scores(doc: dict, split: str) -> list[str]:
    """A split's scores in a metrics document (``metrics.json``, or ``eval``'s): fused, each modality alone, without
    each; or every number of a strategy that reports its own metrics (contrastive, multitask, bridge)."""
    scores = doc[split]
    name = next((n for n in ("accuracy", "mae") if n in scores), None)
    if name is None:
        return [f"{split}:", *(f"  {k}: {v:.4f}" for k, v in scores.items() if isinstance(v, float))]
    return [
        f"{split} {name} (all modalities): {scores[name]:.4f}",
        *(f"  {m} alone: {v[name]:.4f}" for m, v in doc.get("per_modality", {}).items()),
        *(f"  without {m}: {v[name]:.4f}" for m, v in doc.get("missing", {}).items()),
    ]


def _confusion_table(matrix: list[list[int]], class_names: list[str] | None) -> list[str]:
    """A small aligned table, rows the true classes and columns the predicted ones."""
    if len(matrix) > MAX_TABLE_CLASSES:
        return [f"confusion matrix: {len(matrix)} classes (see --json)"]
    names = class_names or [str(i) for i in range(len(matrix))]
    width = max(len(str(x)) for x in [*names, *(c for row in matrix for c in row)])
    return [
        "confusion matrix (rows: true class, columns: predicted):",
        " " * width + "  " + " ".join(f"{n:>{width}}" for n in names),
        *(f"{n:>{width}}  " + " ".join(f"{c:>{width}}" for c in row) for n, row in zip(names, matrix, strict=True)),
    ]


def _summary(metrics: dict) -> str:
    footer = f"params: {metrics['params']:,}   train time: {metrics['train_seconds']:.1f} s"
    if metrics.get("selected"):
        footer += f"   selected epoch: {metrics['selected']['epoch']}/{metrics['epochs']}"
    findings = [f"warning: {line}" for line in metrics.get("diagnosis", {}).get("findings", [])]
    return "\n".join([*_scores(metrics, "test"), f"{footer}   device: {metrics['device']}", *findings])


def cmd_demo(args: argparse.Namespace) -> int:
    metrics = _train(DEMO_RECIPE, [], args.out, resume=False, imports=[])
    print(_summary(metrics))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    recipe, overrides = args.recipe, args.overrides
    if recipe and "=" in recipe and not Path(recipe).exists():  # `train --resume --out RUN key=value`: no recipe
        recipe, overrides = None, [recipe, *overrides]
    if args.trust_pickle:
        overrides = [*overrides, "data.trust_pickle=true"]
    metrics = _train(recipe, overrides, args.out, args.resume, args.imports)
    from polymodal.training.distributed import current_world

    if current_world().is_main:  # under torchrun, one summary
        print(_summary(metrics))
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    config = _load_config(args.recipe, args.overrides, args.imports)
    from polymodal.runs.bridge import bridge_run

    if args.resume and not args.out:
        raise PolymodalError("--resume needs --out RUN_DIR (the bridge run to continue)")
    run_dir = Path(args.out) if args.out else _default_out(args.recipe)
    metrics = bridge_run(config, run_dir, resume=args.resume)
    test = metrics["test"]
    print(f"run directory: {run_dir}")
    for key in sorted(k for k in test if k.endswith("_r1") or k.endswith("_map")):
        print(f"  {key}: {test[key]:.4f}")
    print(f"base space unchanged: {metrics['base_unchanged']}   params: {metrics['params']:,}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from polymodal.runs.inference import evaluate_saved_run

    result = evaluate_saved_run(Path(args.run_dir), split=args.split, data=args.data)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    split = "val" if "val" in result else "test"
    lines = [f"{result['data']}: {result['examples']} examples", *_scores(result, split)]
    if "confusion_matrix" in result:
        info = json.loads((Path(args.run_dir) / "run.json").read_text(encoding="utf-8"))
        lines += _confusion_table(result["confusion_matrix"], info.get("class_names"))
    print("\n".join(lines))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from polymodal.config import absolute_paths, dump_config

    config = _load_config(args.recipe, args.overrides, args.imports)
    print(dump_config(absolute_paths(config)), end="")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from polymodal.runs.inference import predict, write_predictions

    rows = predict(Path(args.run_dir), args.data)
    write_predictions(rows, Path(args.out))
    counts: dict[str, int] = {}
    for row in rows:
        for m in row["present"]:
            counts[m] = counts.get(m, 0) + 1
    present = ", ".join(f"{m} {n}/{len(rows)}" for m, n in counts.items())
    print(f"wrote {args.out}: {len(rows)} predictions (inputs present: {present})")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from polymodal.runs.inference import embed_inputs

    shape = embed_inputs(Path(args.run_dir), args.modality, args.inputs, Path(args.out))
    print(f"wrote {args.out}: {shape[0]} x {shape[1]} float32 embeddings")
    return 0


def cmd_data_pack(args: argparse.Namespace) -> int:
    from polymodal.config import data_config
    from polymodal.data.sources import pack_manifest

    if args.shard_size < 1:
        raise PolymodalError(f"--shard-size: must be at least 1, got {args.shard_size}")
    index = pack_manifest(args.manifest, data_config(args.settings), args.out, args.shard_size, progress=True)
    modalities = ", ".join(index["modalities"])
    print(f"wrote {args.out}: {index['num_samples']} samples in {len(index['shards'])} shards ({modalities})")
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from polymodal.runs.retrieval import build_index

    index = build_index(Path(args.run_dir), args.modality, Path(args.data), Path(args.out), args.backend, args.column)
    print(f"wrote {args.out}: {len(index.ids)} {args.modality} embeddings of dimension {index.dim} ({index.backend})")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from polymodal.runs.retrieval import retrieve

    if args.index is None and args.to is None:
        raise PolymodalError("give --to MODALITY (the run's own gallery of that modality) or --index INDEX_DIR")
    index = Path(args.index) if args.index else Path(args.run_dir) / "index" / args.to
    for result in retrieve(Path(args.run_dir), index, args.modality, args.queries, args.top_k, args.to):
        print(json.dumps(result))
    return 0


def cmd_bench_overhead(args: argparse.Namespace) -> int:
    from polymodal.runs.bench import overhead

    if args.steps < 1 or args.repeats < 1:
        raise PolymodalError("--steps and --repeats: must be at least 1")
    row = overhead(args.model, args.steps, args.repeats, args.overrides)
    print(json.dumps(row, indent=2))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from polymodal.recipes import bundled_recipes, recipe_data, recipe_summary

    recipes = bundled_recipes()
    data = {name: f"data: {recipe_data(path)}" for name, path in recipes.items()}
    width, data_width = max(len(n) for n in recipes), max(len(d) for d in data.values())
    for name in sorted(recipes):
        print(f"{name:<{width}}  {data[name]:<{data_width}}  {recipe_summary(recipes[name])}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from polymodal.data.avmnist import build_avmnist

    # Unset options keep build_avmnist's defaults (one place for each default).
    options = {k: getattr(args, k) for k in ("components", "snr_db", "seed") if getattr(args, k) is not None}
    if "snr_db" in options:
        options["snr_db"] = tuple(options["snr_db"])
    meta = build_avmnist(args.mnist, args.fsdd, args.out, **options)
    sizes = ", ".join(f"{k} {v}" for k, v in meta["sizes"].items())
    print(f"wrote {args.out}: avmnist ({sizes})")
    return 0


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: it registers custom components (encoders, strategies, ...); repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polymodal", description="Multimodal representation learning in PyTorch.")
    parser.add_argument("--version", action="version", version=f"polymodal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help=f"train and evaluate the bundled recipe {DEMO_RECIPE} on the embedded data")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<time>)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a recipe: polymodal train RECIPE [key.path=value ...]")
    p.add_argument(
        "recipe", nargs="?", help="bundled recipe name (see `polymodal recipes`) or a YAML path; not needed to --resume"
    )
    p.add_argument("overrides", nargs="*", help="dotted-key overrides, e.g. trainer.epochs=1")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoint, with the config saved in its config.yaml",
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow reading a data pickle (MMSA/MulT) once, to convert it into a safe .npz cache",
    )
    _add_import(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "bridge", help="link two contrastive spaces without paired data (Ex-MCR): polymodal bridge RECIPE"
    )
    p.add_argument("recipe", help="bundled bridge recipe (e.g. exmcr-digits) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted-key overrides, e.g. trainer.seed=1 data.max_train_samples=2000")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the bridge run in --out (spaces and projector)")
    _add_import(p)
    p.set_defaults(func=cmd_bridge)

    p = sub.add_parser("eval", help="score a trained run on one of its splits or on a new CSV manifest")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--data", help="a CSV manifest with the same columns as the run's training data")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON (the keys of metrics.json)")
    _add_import(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="predict with a trained run for every row of a CSV manifest (no target needed)")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, help="a CSV manifest with the run's input columns (any may be missing)")
    p.add_argument("--out", required=True, help="output CSV: id, prediction, p_<class>..., present")
    _add_import(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("config", help="print a recipe's resolved config (what a run's config.yaml holds), no training")
    p.add_argument("recipe", help="bundled recipe name (see `polymodal recipes`) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted-key overrides, e.g. trainer.epochs=1")
    _add_import(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("embed", help="embed inputs of one modality with a trained run's encoder")
    p.add_argument("run_dir")
    p.add_argument("--modality", required=True)
    p.add_argument("inputs", nargs="+", help="file paths (image/audio/features) or text strings")
    p.add_argument("--out", required=True, help="output .npy file")
    _add_import(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("data", help="build datasets from raw files: polymodal data build NAME ...")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser("build", help="build a dataset's arrays")
    build_sub = build.add_subparsers(dest="dataset", required=True)
    b = build_sub.add_parser("avmnist", help="AV-MNIST (MultiBench/CentralNet recipe) from MNIST and FSDD")
    b.add_argument("--mnist", required=True, help="Keras-style mnist.npz")
    b.add_argument("--fsdd", required=True, help="FSDD folder (with recordings/) or its recordings folder")
    b.add_argument("--out", required=True, help="output folder (later given to recipes as data.root)")
    b.add_argument("--components", type=int, help="PCA components kept for the images (default 196)")
    b.add_argument("--snr-db", type=float, nargs=2, metavar=("LOW", "HIGH"), help="noise SNR range (default 0 10)")
    b.add_argument("--seed", type=int, help="pairing and noise seed (default 0)")
    b.set_defaults(func=cmd_data_build)
    p = data_sub.add_parser("pack", help="decode a CSV manifest once into checksummed, memory-mapped shards")
    p.add_argument("manifest", help="the CSV manifest")
    p.add_argument("settings", nargs="*", help="data settings as key.path=value, e.g. target=label image.size=32")
    p.add_argument("--out", required=True, help="output folder (train with data.name=packed data.train=DIR)")
    p.add_argument("--shard-size", type=int, default=4096, help="samples per shard (default 4096)")
    p.set_defaults(func=cmd_data_pack)

    p = sub.add_parser("index", help="embedding indexes: polymodal index build RUN_DIR --modality M DATA --out INDEX")
    index_sub = p.add_subparsers(dest="index_command", required=True)
    p = index_sub.add_parser("build", help="embed a CSV manifest column with a run's encoder into a searchable index")
    p.add_argument("run_dir")
    p.add_argument("--modality", required=True, help="the encoder that embeds the gallery")
    p.add_argument("data", help="CSV manifest of the gallery (items named by its id column, else by row number)")
    p.add_argument("--column", help="manifest column (default: the run's column for --modality, else its name)")
    p.add_argument("--backend", default="exact", help="exact (default), faiss-flat or faiss-ivf (approximate)")
    p.add_argument("--out", required=True, help="index folder to write")
    _add_import(p)
    p.set_defaults(func=cmd_index_build)

    p = sub.add_parser("retrieve", help="search an index with queries embedded by a run's encoder")
    p.add_argument("run_dir")
    p.add_argument("--index", help="folder written by `polymodal index build` (default: RUN_DIR/index/<--to>)")
    p.add_argument("--from", "--modality", dest="modality", required=True, help="the modality of the queries")
    p.add_argument("--to", help="the modality of the gallery (checked against the index)")
    p.add_argument("queries", nargs="+", help="file paths (image/audio/features) or text strings")
    p.add_argument("--top-k", type=int, default=10)
    _add_import(p)
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("bench", help="benchmarks: polymodal bench overhead")
    bench_sub = p.add_subparsers(dest="bench_command", required=True)
    p = bench_sub.add_parser("overhead", help="time the Trainer against a plain PyTorch loop on the same model")
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. data.root=avmnist for --model avmnist")
    p.add_argument("--model", default="demo", help="demo (avdigits-joint) or avmnist (avmnist-concat)")
    p.add_argument("--steps", type=int, default=50, help="training steps per timed run (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each loop, alternating (default 3)")
    p.set_defaults(func=cmd_bench_overhead)

    p = sub.add_parser("recipes", help="list the bundled recipes and the data each needs")
    p.set_defaults(func=cmd_recipes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may also follow options (`train RECIPE --out DIR a=b`): argparse stops a positional list at the first
    # option, so key=value words it leaves over join the command's overrides (or data settings).
    args, extra = parser.parse_known_args(argv)
    if extra:
        target = next((name for name in ("overrides", "settings") if hasattr(args, name)), None)
        if target is None or any(word.startswith("-") or "=" not in word for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, target, [*getattr(args, target), *extra])
    keep_freed_memory()  # every batch reuses the last one's memory (polymodal.allocator)
    try:
        _import_modules(getattr(args, "imports", []))
        return args.func(args)
    except PolymodalError as err:
        print(f"polymodal: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused (permissions, a full disk, a folder where a file goes)
        where = f"{err.filename}: " if err.filename else ""
        print(f"polymodal: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polymodal: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The console entry point (``polymodal``, ``python -m polymodal``): exits with :func:`main`'s status.

    A command that returns has written and closed everything it writes, so the process ends there, without the
    interpreter's teardown of torch and the other imported modules (about half a second after a run), unless a
    profiler or tracer (cProfile, coverage, a debugger) still has to write what it gathered.
    """
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`polymodal recipes | head`) or stream: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
