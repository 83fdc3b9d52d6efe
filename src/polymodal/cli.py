"""The ``polymodal`` command line: parses arguments, loads and validates recipes, calls library functions.

Known errors (bad input, bad config) are printed as one line and exit with status 2; no training logic lives here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from polymodal.errors import PolymodalError

DEMO_RECIPE = "avdigits-joint"


def _default_out(recipe: str) -> Path:
    return Path("runs") / f"{Path(recipe).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _absolute_data_paths(config: object) -> None:
    # Resolved configs hold absolute paths so that eval/resume work from any working directory.
    data = config.data  # type: ignore[attr-defined]
    for key in ("root", "train", "val", "test"):
        value = getattr(data, key)
        if value:
            setattr(data, key, str(Path(value).expanduser().resolve()))


def _train(recipe: str, overrides: list[str], out: str | None, resume: bool) -> dict:
    from polymodal.config import load_config
    from polymodal.runs import train_run

    config = load_config(recipe, overrides)
    _absolute_data_paths(config)
    if resume and not out:
        raise PolymodalError("--resume needs --out RUN_DIR (the run to continue)")
    run_dir = Path(out) if out else _default_out(recipe)
    metrics = train_run(config, run_dir, resume=resume)
    print(f"run directory: {run_dir}")
    return metrics


def _summary(metrics: dict) -> str:
    test = metrics["test"]
    name = "accuracy" if "accuracy" in test else "mae"
    lines = [
        f"test {name} (all modalities): {test[name]:.4f}",
        *(f"  {m} alone: {v[name]:.4f}" for m, v in metrics["per_modality"].items()),
        *(f"  without {m}: {v[name]:.4f}" for m, v in metrics["missing"].items()),
        f"params: {metrics['params']:,}   train time: {metrics['train_seconds']:.1f} s   device: {metrics['device']}",
    ]
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    metrics = _train(DEMO_RECIPE, [], args.out, resume=False)
    print(_summary(metrics))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    metrics = _train(args.recipe, args.overrides, args.out, args.resume)
    print(_summary(metrics))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from polymodal.runs import evaluate_saved_run

    result = evaluate_saved_run(Path(args.run_dir), split=args.split, data=args.data)
    print(json.dumps(result, indent=2))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from polymodal.runs import embed_inputs

    shape = embed_inputs(Path(args.run_dir), args.modality, args.inputs, Path(args.out))
    print(f"wrote {args.out}: {shape[0]} x {shape[1]} float32 embeddings")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from polymodal.config import bundled_recipes, recipe_summary

    recipes = bundled_recipes()
    width = max(len(n) for n in recipes)
    for name in sorted(recipes):
        print(f"{name:<{width}}  {recipe_summary(recipes[name])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polymodal", description="Multimodal representation learning in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help=f"train and evaluate the bundled recipe {DEMO_RECIPE} on the embedded data")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<time>)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a recipe: polymodal train RECIPE [key.path=value ...]")
    p.add_argument("recipe", help="bundled recipe name (see `polymodal recipes`) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted-key overrides, e.g. trainer.epochs=1")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="score a trained run on one of its splits or on a new CSV manifest")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--data", help="a CSV manifest with the same columns as the run's training data")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("embed", help="embed inputs of one modality with a trained run's encoder")
    p.add_argument("run_dir")
    p.add_argument("--modality", required=True)
    p.add_argument("inputs", nargs="+", help="file paths (image/audio/features) or text strings")
    p.add_argument("--out", required=True, help="output .npy file")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("recipes", help="list the bundled recipes")
    p.set_defaults(func=cmd_recipes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
