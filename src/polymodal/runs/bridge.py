"""Bridge runs (Ex-MCR, arXiv 2310.08884): the library functions behind ``polymodal bridge``.

A bridge recipe is a run config with a ``spaces`` section naming a frozen *base* space and a *leaf* space that share
one *overlapping* modality (e.g. image-text and audio-text, through text). ``bridge_run``:

1. gets both spaces: a finished run, or a recipe trained into ``OUT/spaces/{base,leaf}`` on the bridge's data, or
   pretrained weights from a local folder;
2. embeds memory banks from the bridge data's train (and validation) split, each bank modality from its own
   disjoint part of the split, so no two banks hold the same sample and no cross-space pair is ever used;
3. builds pseudo-pair tuples from the banks (``spaces.pseudo_pairs``) and trains the projector (``model.name``:
   ``exmcr`` or ``cmcr``) with the ``bridge`` strategy, selecting on the validation pseudo-pairs' loss (no labels);
4. scores cross-modal retrieval of the unified space on the test split (relevant = same target), and the base
   space's own retrieval before and after bridging, and writes indexes of the test split for ``polymodal retrieve``.

The run directory holds ``config.yaml``, ``run.json`` (the spaces' folders and widths), ``metrics.json``,
``log.csv``, ``checkpoints/``, ``plots/``, ``index/<modality>/`` and, for recipe-trained spaces, ``spaces/``.
"""

from __future__ import annotations

import time
from collections.abc import Sized
from itertools import combinations
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, default_collate

from polymodal.config import RunConfig, SpacesConfig, absolute_paths, validate_config
from polymodal.data.sources import DataBundle
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.eval.index import EmbeddingIndex
from polymodal.eval.metrics import cross_modal_retrieval
from polymodal.eval.plots import plot_training_curves
from polymodal.models import build_model
from polymodal.progress import say
from polymodal.recipe_files import apply_overrides, read_yaml, resolve_recipe_path
from polymodal.runs.rundir import RunDir, load_run
from polymodal.runs.train import read_data, train_run
from polymodal.spaces import (
    BASE,
    LEAF,
    SIDES,
    ContrastiveSpace,
    ModelSpace,
    PseudoPairDataset,
    UnifiedSpace,
    embed_split,
    load_pretrained_space,
    memory_banks,
    pseudo_pairs,
    unified_modalities,
)
from polymodal.strategies import STRATEGIES
from polymodal.training import Trainer, seed_everything
from polymodal.training.checkpoint import CheckpointManager
from polymodal.training.log import wide_rows
from polymodal.training.setup import resolve_device


def space_config(config: RunConfig, side: str) -> RunConfig | None:
    """The run config of a space the bridge trains from a recipe (None for a run or pretrained space).

    The space recipe runs on the bridge's ``data`` section and ``trainer.seed``/``device``/``progress``, then its
    own ``overrides``.
    """
    source = getattr(config.spaces, side)
    if not source.recipe:
        return None
    path = resolve_recipe_path(source.recipe)
    raw = read_yaml(path)
    raw["data"] = config.data.model_dump(mode="json")
    trainer = raw.setdefault("trainer", {})
    for key in ("seed", "device", "progress"):
        trainer[key] = getattr(config.trainer, key)
    return validate_config(apply_overrides(raw, source.overrides), f"spaces.{side}.recipe ({path})")


def _load_source(config: RunConfig, side: str, folder: Path | None, device: torch.device) -> ContrastiveSpace:
    """The space of one side: from its run folder, or (no folder) from pretrained weights."""
    if folder is None:
        source = getattr(config.spaces, side)
        return load_pretrained_space(source.pretrained, source.path, source.model_name, device)
    return load_space(folder, device)


def _check_bridge_config(config: RunConfig) -> SpacesConfig:
    """Checks what only a bridge needs of a config; returns its ``spaces`` section."""
    if config.spaces is None:
        raise ConfigError("a bridge recipe needs a spaces section (base, leaf, overlap)")
    if config.model.name not in ("exmcr", "cmcr"):
        raise ConfigError(f"model.name: a bridge trains an exmcr or cmcr projector, not {config.model.name!r}")
    if config.strategy["name"] != "bridge":
        raise ConfigError(f"strategy.name: a bridge recipe uses the bridge strategy, not {config.strategy['name']!r}")
    if config.trainer.selection_metric != "loss":
        raise ConfigError("trainer.selection_metric: a bridge selects on its validation pseudo-pairs' loss (use loss)")
    for side in SIDES:
        source = getattr(config.spaces, side)
        if source.run and not (Path(source.run) / "config.yaml").is_file():
            raise ConfigError(f"spaces.{side}.run: {source.run}: not a polymodal run directory")
        if source.pretrained and not Path(source.path).expanduser().exists():
            raise ConfigError(f"spaces.{side}.path: {source.path}: not found (the local folder of the weights)")
    return config.spaces


def bridge_run(config: RunConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Trains the spaces a recipe names (if any) and the bridge between them; returns ``metrics.json``'s contents.

    Everything is validated before anything is written. With ``resume``, finished spaces are reused, an unfinished
    space run continues from its checkpoint, and so does the projector. Relative paths in the config are made
    absolute first.
    """
    absolute_paths(config)
    spaces_cfg = _check_bridge_config(config)
    run_dir = RunDir(out)
    run_dir.check(config, resume)
    sub_configs = {side: space_config(config, side) for side in SIDES}
    device = resolve_device(config.trainer.device)
    seed_everything(config.trainer.seed, config.trainer.deterministic)
    bundle = read_data(config, config.trainer.progress)
    # Nothing worth resuming (no checkpoint of a space or of the projector): leave no half-written directory.
    with run_dir.writing(config, lambda: any(run_dir.path.rglob("*.safetensors"))):
        return _bridge(config, spaces_cfg, run_dir, bundle, sub_configs, device, resume)


def _space_folders(config: RunConfig, out: Path, sub_configs: dict[str, RunConfig | None]) -> dict[str, Path | None]:
    folders: dict[str, Path | None] = {}
    for side in SIDES:
        source = getattr(config.spaces, side)
        if source.run:
            folders[side] = Path(source.run)
        elif (sub_config := sub_configs[side]) is not None:
            folder = out / "spaces" / side
            if not (folder / "metrics.json").is_file():
                say(f"bridge: training the {side} space ({source.recipe}) in {folder}", config.trainer.progress)
                train_run(sub_config, folder, resume=(folder / "checkpoints").is_dir())
            folders[side] = folder
        else:
            folders[side] = None
    return folders


def _check_spaces(spaces: dict[str, ContrastiveSpace], overlap: str, bundle: DataBundle) -> None:
    shared = set(spaces[BASE].modalities) & set(spaces[LEAF].modalities)
    if shared != {overlap}:
        raise ConfigError(
            f"spaces.overlap: the spaces must share exactly the modality {overlap!r}; they share "
            f"{', '.join(sorted(shared)) or 'nothing'} (base: {', '.join(spaces[BASE].modalities)}; "
            f"leaf: {', '.join(spaces[LEAF].modalities)})"
        )
    for side, space in spaces.items():
        for m in space.modalities:
            if m not in bundle.shapes:
                raise ConfigError(f"data: the bridge data has no {m!r} modality for the {side} space")


def _retrieval(embedded: dict[str, tuple[Tensor, Tensor, Tensor]]) -> dict[str, float]:
    pairs = list(combinations(embedded, 2))
    return cross_modal_retrieval(
        {m: e for m, (e, _, _) in embedded.items()}, {m: t for m, (_, t, _) in embedded.items()}, pairs
    )


def _bridge(
    config: RunConfig,
    spaces_cfg: SpacesConfig,
    run_dir: RunDir,
    bundle: DataBundle,
    sub_configs: dict[str, RunConfig | None],
    device: torch.device,
    resume: bool,
) -> dict[str, Any]:
    out = run_dir.path
    show = config.trainer.progress
    started = time.perf_counter()
    folders = _space_folders(config, out, sub_configs)
    spaces = {side: _load_source(config, side, folders[side], device) for side in SIDES}
    _check_spaces(spaces, spaces_cfg.overlap, bundle)
    eval_batch = config.data.eval_batch_size
    test_size = len(cast(Sized, bundle.test))
    say(f"bridge: embedding test ({test_size} samples) in both spaces (retrieval before bridging)", show)
    # The base space's own retrieval before bridging, on the test split.
    base_before = embed_split(spaces[BASE], spaces[BASE].modalities, bundle.test, bundle, eval_batch)
    leaf_before = embed_split(spaces[LEAF], spaces[LEAF].modalities, bundle.test, bundle, eval_batch)

    rotate = spaces_cfg.queries == "all"
    say(f"bridge: memory banks and pseudo-pairs through {spaces_cfg.overlap} from train and val", show)
    pairs = {}
    banks_info = {}
    for name, split in (("train", bundle.train), ("val", bundle.val)):
        banks = memory_banks(spaces, spaces_cfg.overlap, split, bundle, eval_batch, spaces_cfg.bank_size)
        banks_info[name] = {f"{side}/{m}": len(b) for side in SIDES for m, b in banks[side].items()}
        pairs[name] = PseudoPairDataset(
            pseudo_pairs(banks[BASE], banks[LEAF], spaces_cfg.overlap, spaces_cfg.aggregation_temperature, rotate)
        )
    widths = {side: int(next(iter(pairs["train"].pairs[side].values())).shape[-1]) for side in SIDES}
    info = {
        "task": "bridge",
        "modalities": unified_modalities(spaces[BASE], spaces[LEAF]),
        "shapes": {side: [widths[side]] for side in SIDES},
        "dtypes": {},
        "class_names": bundle.class_names,
        "columns": None,
        "spaces": {side: str(folder.resolve()) if folder else None for side, folder in folders.items()},
        "overlap": spaces_cfg.overlap,
    }
    run_dir.write_info(info)

    # Seeded here, so the projector starts alike whether the spaces were trained in this process, resumed or given.
    seed_everything(config.trainer.seed, config.trainer.deterministic)
    model = build_model(config.model, {side: (w,) for side, w in widths.items()}, 1)
    say(f"bridge: training the {config.model.name} projector on {len(pairs['train'])} pseudo-pairs", show)
    strategy = STRATEGIES.build(config.strategy, model=model, data=DataSpec.from_info(info))
    val_loader = DataLoader(pairs["val"], batch_size=config.data.batch_size, collate_fn=default_collate)
    trainer = Trainer(
        strategy,
        config.trainer,
        out,
        default_collate,
        config.data.batch_size,
        lambda strat: strat.evaluate(val_loader, device)["metrics"],
    )
    summary = trainer.fit(
        pairs["train"], resume=resume and bool(CheckpointManager(out / "checkpoints").step_checkpoints())
    )
    selected = trainer.load_best()
    model.eval()
    say(f"bridge: scoring retrieval of the unified space (epoch {selected['epoch']}) on test", show)
    unified = UnifiedSpace(spaces[BASE], spaces[LEAF], model)
    after = embed_split(unified, unified.modalities, bundle.test, bundle, eval_batch)
    base_after = {m: after[m] for m in spaces[BASE].modalities}
    _write_indexes(out / "index", after, bundle)
    rows = wide_rows(out / "log.csv")
    plot_training_curves(rows, out / "plots" / "training_curves.png")
    report = {
        "method": config.model.name,
        "banks": banks_info,
        "spaces": info["spaces"],
        "val": {"loss": summary["best"]},
        "test": _retrieval(after),
        "base_before": _retrieval(base_before),
        "base_after": _retrieval(base_after),
        "base_unchanged": all(torch.equal(base_before[m][0], base_after[m][0]) for m in base_before),
        "leaf_before": _retrieval(leaf_before),
    }
    return run_dir.write_metrics(
        config, "bridge", model, summary, started, len(pairs["train"]), trainer.device, selected, report
    )


def _write_indexes(folder: Path, embedded: dict[str, tuple[Tensor, Tensor, Tensor]], bundle: DataBundle) -> None:
    """One exact index per modality of the test split, items named ``test-<index>:<class>``."""
    names = bundle.class_names
    for m, (e, t, i) in embedded.items():
        ids = [f"test-{int(k)}:{names[int(c)] if names else int(c)}" for k, c in zip(i, t, strict=True)]
        EmbeddingIndex(e.numpy(), ids, m).save(folder / m)


def evaluate_bridge(run_dir: Path, split: str = "test") -> dict[str, Any]:
    """Cross-modal retrieval of a finished bridge run's unified space on one split of its data (``polymodal eval``)."""
    config, _, _ = load_run(run_dir)
    unified = load_unified_space(run_dir)
    bundle = read_data(config, config.trainer.progress)
    dataset = bundle.test if split == "test" else bundle.val
    examples = len(cast(Sized, dataset))
    say(f"evaluating {run_dir}'s unified space on {split} ({examples} samples)", config.trainer.progress)
    embedded = embed_split(unified, unified.modalities, dataset, bundle, config.data.eval_batch_size)
    return {"data": split, "examples": examples, split: _retrieval(embedded)}


def load_space(run_dir: Path, device: torch.device | str = "cpu") -> ModelSpace:
    """The contrastive space of a finished polymodal run (its best weights), frozen."""
    config, _, strategy = load_run(run_dir)
    if config.spaces is not None:
        raise ConfigError(f"{run_dir}: a bridge run, not a contrastive space (bridge its spaces directly)")
    return ModelSpace(strategy.model, device, config.data)


def load_unified_space(run_dir: Path, device: torch.device | str = "cpu") -> UnifiedSpace:
    """The unified space of a finished bridge run: its spaces and its selected projector."""
    run_dir = Path(run_dir)
    config, info, strategy = load_run(run_dir)
    if config.spaces is None or "spaces" not in info:
        raise ConfigError(f"{run_dir}: not a bridge run")
    spaces = {}
    for side in SIDES:
        folder = info["spaces"][side]
        if folder and not Path(folder).is_dir():
            raise ConfigError(f"{run_dir}/run.json: the {side} space's run {folder} is missing")
        spaces[side] = _load_source(config, side, Path(folder) if folder else None, torch.device(device))
    return UnifiedSpace(spaces[BASE], spaces[LEAF], strategy.model.to(device))
