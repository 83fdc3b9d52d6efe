"""The run directory, the same for every kind of run: checked before anything is built, written, and read back.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (what the data told the model),
``metrics.json`` (the final report, written last: a run without it is unfinished), ``log.csv``, ``checkpoints/`` and
``plots/``. :class:`RunDir` writes it for ``train_run`` and ``bridge_run``; :func:`load_run` rebuilds a run from it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from polymodal.config import RunConfig, dump_config, validate_config
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.fileio import atomic_write_text
from polymodal.models import build_model
from polymodal.recipe_files import apply_overrides, read_yaml
from polymodal.runs.provenance import provenance
from polymodal.strategies import STRATEGIES
from polymodal.training.checkpoint import CheckpointManager


class RunDir:
    """The folder a run writes (``--out``).

    :meth:`check` refuses a folder that holds something else than the run to start or resume; :meth:`writing`
    creates the folder, writes ``config.yaml`` and removes a folder it created when the run fails with nothing to
    resume; :meth:`write_info` writes ``run.json`` and :meth:`write_metrics` ``metrics.json``. Under ``torchrun``
    only rank 0 writes.

    Args:
        path: the run directory.
        main: whether this process writes (rank 0).
    """

    def __init__(self, path: Path, main: bool = True) -> None:
        self.path = Path(path)
        self.main = main

    def check(self, config: RunConfig, resume: bool) -> None:
        """A new run needs an absent or empty folder; ``resume`` needs an unfinished run of the same config.

        Raises:
            ConfigError: naming the folder and what to do instead.
        """
        if resume:
            check_resumable(self.path, config)
        elif self.path.exists() and any(self.path.iterdir()):
            raise ConfigError(
                f"{self.path}: already exists and is not empty (use --resume to continue it, or another --out)"
            )

    @contextmanager
    def writing(self, config: RunConfig, resumable: Callable[[], bool]) -> Iterator[None]:
        """Creates the folder and writes ``config.yaml``; when the block fails and ``resumable()`` is false (no
        checkpoint to continue from), removes the folder again if it did not exist before."""
        created = not self.path.exists()
        if self.main:
            self.path.mkdir(parents=True, exist_ok=True)
        try:
            if self.main:
                atomic_write_text(self.path / "config.yaml", dump_config(config))
            yield
        except BaseException:
            if self.main and created and not resumable():
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def write_info(self, info: dict[str, Any]) -> None:
        """Writes ``run.json``: what the data told the model (task, modalities, shapes, class names, ...)."""
        if self.main:
            atomic_write_text(self.path / "run.json", json.dumps(info, indent=2))

    def write_metrics(
        self,
        config: RunConfig,
        task: str,
        model: nn.Module,
        summary: dict[str, Any],
        started: float,
        examples: int,
        device: Any,
        selected: dict[str, Any],
        report: dict[str, Any],
    ) -> dict[str, Any]:
        """Writes ``metrics.json`` and returns its contents: the header every run shares, the run's own ``report``,
        then the provenance.

        Args:
            config: the run's config.
            task: the data's task (``bridge`` for a bridge).
            model: the trained model (its parameters are counted).
            summary: ``Trainer.fit``'s summary.
            started: ``time.perf_counter()`` when the run's work started (``wall_seconds`` counts from there).
            examples: training examples.
            device: where the model trained.
            selected: ``Trainer.load_best``'s description of the selected weights.
            report: the run's own keys (``val``, ``test``, ...).
        """
        metrics = {
            "task": task,
            "strategy": config.strategy["name"],
            "seed": config.trainer.seed,
            "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(summary["train_seconds"], 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
            "steps": summary["steps"],
            "epochs": summary["epochs"],
            "train_examples": examples,
            "device": str(device),
            "selected": selected,
            **report,
            **provenance(),
        }
        atomic_write_text(self.path / "metrics.json", json.dumps(metrics, indent=2))
        return metrics


# What a resumed run may change: how it reports progress, not what it computes.
RESUME_MAY_CHANGE = ("trainer.progress",)


def check_resumable(out: Path, config: RunConfig) -> None:
    """Raises a ConfigError unless ``out`` is an unfinished run directory of the same config.

    Settings that differ from the run's ``config.yaml`` are named with both values (``RESUME_MAY_CHANGE`` aside).
    """
    if not (out / "config.yaml").is_file():
        raise ConfigError(f"{out}: not a polymodal run directory (no config.yaml), nothing to resume")
    if (out / "metrics.json").is_file():
        raise ConfigError(
            f"{out}: the run already finished (metrics.json exists), nothing to resume; "
            f"score it again with `polymodal eval {out}`, or train anew with another --out"
        )
    saved = validate_config(read_yaml(out / "config.yaml"), str(out / "config.yaml")).model_dump(mode="json")
    mine = config.model_dump(mode="json")
    diff = [k for k in sorted(_diff_keys(saved, mine)) if k not in RESUME_MAY_CHANGE]
    if diff:
        shown = "; ".join(f"{k}={_at(mine, k)} (the run has {_at(saved, k)})" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(
            f"{out}: --resume continues a run with its own config, and this one differs: {shown}{more}; "
            f"resume with `polymodal train --resume --out {out}` alone"
        )


def saved_config(out: Path, overrides: list[str]) -> RunConfig:
    """A run directory's own config (its ``config.yaml``) with ``overrides`` applied: ``--resume`` without a recipe."""
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{out}: not a polymodal run directory (no config.yaml), nothing to resume")
    config = validate_config(apply_overrides(read_yaml(path), overrides), str(path))
    if config.spaces is not None:
        raise ConfigError(f"{out}: a bridge run; continue it with `polymodal bridge RECIPE --resume --out {out}`")
    return config


def _at(tree: dict[str, Any], key: str) -> str:
    """The value at a dotted key of a nested dict, as YAML would show it (``absent`` where there is none)."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "absent"
        node = node[part]
    return node if isinstance(node, str) else json.dumps(node)


_MISSING = object()


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [d for k in keys for d in _diff_keys(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def load_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any], Any]:
    """Rebuilds a finished or checkpointed run's config, data info and strategy with its best weights."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "run.json").is_file():
        raise ConfigError(f"{run_dir}: not a polymodal run directory (config.yaml or run.json missing)")
    manager = CheckpointManager(run_dir / "checkpoints")
    if not (manager.folder / "best.json").is_file():
        raise ConfigError(f"{run_dir}/checkpoints: no checkpoints (the run has not finished an epoch)")
    config = validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    info = _read_run_info(run_dir / "run.json")
    try:
        tensors, _ = manager.load("best")
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    out_dim = len(info["class_names"]) if info["class_names"] else 1
    model = build_model(config.model, shapes, out_dim)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{manager.folder}/best.safetensors: does not match the run's config.yaml ({first})"
        ) from None
    model.eval()
    strategy = STRATEGIES.build(config.strategy, model=model, data=DataSpec.from_info(info))
    return config, info, strategy


def _read_run_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({' '.join(str(err).split())})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path}: not a polymodal run.json (expected a JSON object)")
    missing = [k for k in ("task", "modalities", "shapes", "dtypes", "class_names") if k not in info]
    if missing:
        raise ConfigError(f"{path}: not a polymodal run.json (missing {', '.join(missing)})")
    return info
