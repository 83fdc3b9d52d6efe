"""Use a trained run: score it, predict with it, embed with it (``polymodal eval``, ``predict``, ``embed``).

Each function loads the run's selected weights (:func:`~polymodal.runs.rundir.load_run`); a bridge run (its config
has a ``spaces`` section) is scored and embeds through its unified space (:mod:`polymodal.runs.bridge`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.config import RunConfig
from polymodal.data.collate import Collate, move_to
from polymodal.data.items import item_batches
from polymodal.data.memory import run_samples
from polymodal.data.sources import build_split, check_same_shapes, manifest_split
from polymodal.data.vocab import check_modality
from polymodal.errors import ConfigError, DataError
from polymodal.eval.evaluate import full_report
from polymodal.eval.representation import representation_report
from polymodal.fileio import atomic_write_bytes, atomic_write_text
from polymodal.models.embed import model_embeddings
from polymodal.progress import say
from polymodal.runs.bridge import evaluate_bridge, load_unified_space
from polymodal.runs.rundir import load_run
from polymodal.runs.train import eval_loader, read_data, split_report
from polymodal.training.setup import resolve_device


def evaluate_saved_run(run_dir: Path, split: str = "test", data: str | Path | Dataset | None = None) -> dict[str, Any]:
    """Scores a run's selected weights on one of its splits, a new CSV manifest (same columns) or a dataset of
    polymodal samples (``polymodal.data.memory``; inputs it lacks are missing).

    Returns:
        ``{"data": the split or manifest, "examples": N, split: metrics, ...}`` with the keys of ``metrics.json``
        (a manifest or dataset is scored as ``test``).
    """
    config, info, strategy = load_run(run_dir)
    if config.spaces is not None:  # a bridge run: retrieval in its unified space
        if data is not None:
            raise ConfigError(f"--data: a bridge run is evaluated on its own data's splits ({run_dir})")
        return evaluate_bridge(run_dir, split)
    modalities = list(info["modalities"])
    absent: list[str] = []
    show = config.trainer.progress
    if isinstance(data, (str, Path)):
        dataset = run_manifest(config, info, data, labeled=True)
        absent = [m for m, c in dataset.columns.items() if c in dataset.absent]
        modalities = [m for m in modalities if m not in absent]
        name, key = str(data), "test"
        bundle = None
    elif data is not None:
        dataset, absent = run_samples(data, info, labeled=True)
        modalities = [m for m in modalities if m not in absent]
        name, key, bundle = "data", "test", None
    elif config.eval.representation:  # as in metrics.json: the probes fit on the train split
        bundle = read_data(config, show)
        dataset = bundle.test if split == "test" else bundle.val
        name = key = split
    else:
        bundle = None
        say(f"reading data: the {split} split of {config.data.name}", show)
        dataset = build_split(config.data, config.trainer.seed, split, info, show)
        name = key = split
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    collate = Collate(shapes, {m: getattr(torch, d) for m, d in info["dtypes"].items()})
    loader = DataLoader(dataset, batch_size=config.data.eval_batch_size, collate_fn=collate)
    device = resolve_device(config.trainer.device)
    strategy.model.to(device)
    say(f"evaluating {run_dir}'s selected weights on {name} ({len(dataset)} samples)", show)

    def standard() -> dict[str, Any]:
        return full_report(
            strategy,
            loader,
            info["task"],
            modalities,
            info["class_names"],
            config.eval.noise_levels,
            config.eval.seed,
            device,
            None,
            show_progress=show,
        )

    report, own = split_report(strategy, loader, device, standard)
    if own:
        return {"data": name, "examples": len(dataset), key: report.pop("metrics"), **report}
    if bundle is not None:
        train_loader = eval_loader(bundle.train, bundle, config)
        report["representation"] = representation_report(strategy.embed, strategy.match, train_loader, loader, device)
    if absent:
        report["missing_inputs"] = absent
    return {"data": name, "examples": len(dataset), key: report.pop("metrics"), **report}


def run_manifest(config: RunConfig, info: dict[str, Any], data: str | Path, labeled: bool) -> Any:
    """A new CSV manifest decoded for a trained run: its columns, adapter settings and classes.

    A column of the run that the file lacks, or leaves empty everywhere, is an input missing for every row (said on
    stderr); without ``labeled`` the target column is not needed.
    """
    columns = info.get("columns")
    if not columns:
        raise ConfigError(f"--data {data}: the run was not trained on a CSV manifest, so there are no columns to map")
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    by_column = {c: m for m, c in columns.items()}
    dataset = manifest_split(
        data, config.data, info["class_names"], by_column, config.trainer.progress, shapes=shapes, labeled=labeled
    )
    if len(dataset.absent) == len(columns):
        wanted = ", ".join(map(repr, columns.values()))
        raise DataError(f"{data}: none of the run's input columns ({wanted}) is in the file with a value")
    check_same_shapes(dataset, shapes, "the run's training data")
    for column in dataset.absent:
        modality = next(m for m, c in columns.items() if c == column)
        say(f"polymodal: note: {data}: no values in column {column!r} ({modality}): treated as missing")
    return dataset


def predict(run_dir: str | Path, data: str | Path | Dataset, batch_size: int = 256) -> list[dict[str, Any]]:
    """Predictions of a trained run for every row of a CSV manifest, or every sample of a dataset of polymodal
    samples (``polymodal.data.memory``); no target is needed.

    Columns of the run that the file lacks or leaves empty are missing inputs, as empty cells are.

    Returns:
        One dict per row, in order: ``id`` (the id column, else the row number; a sample's ``index``),
        ``prediction`` (class name, or value for regression), ``probabilities`` (class name -> probability;
        classification only) and ``present`` (the inputs the row had).
    """
    config, info, strategy = load_run(Path(run_dir))
    if config.spaces is not None:
        raise ConfigError(f"{run_dir}: a bridge run embeds and retrieves; it has no predictions (use embed/retrieve)")
    if isinstance(data, (str, Path)):
        dataset = run_manifest(config, info, data, labeled=False)
        ids = dataset.ids
    else:
        dataset, ids = run_samples(data, info, labeled=False)[0], None
    shapes = {m: tuple(s) for m, s in info["shapes"].items()}
    collate = Collate(shapes, {m: getattr(torch, d) for m, d in info["dtypes"].items()})
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    device = resolve_device(config.trainer.device)
    strategy.model.to(device).eval()
    classes = info["class_names"]
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for batch in loader:
            outputs = strategy.predict(move_to(batch, device)).float().cpu()
            present = {m: batch["present"][m] for m in info["modalities"] if m in batch["present"]}
            for i, index in enumerate(batch["index"].tolist()):
                row: dict[str, Any] = {"id": ids[index] if ids is not None else index}
                if info["task"] == "classification":
                    probs = torch.softmax(outputs[i], dim=-1)
                    row["prediction"] = classes[int(probs.argmax())]
                    row["probabilities"] = {c: float(p) for c, p in zip(classes, probs, strict=True)}
                else:
                    row["prediction"] = float(outputs[i].reshape(-1)[0])
                row["present"] = [m for m, p in present.items() if bool(p[i])]
                rows.append(row)
    return rows


def write_predictions(rows: list[dict[str, Any]], out: str | Path) -> None:
    """Writes :func:`predict`'s rows as CSV atomically: id, prediction, one ``p_<class>`` column per class,
    present (inputs joined by ``;``)."""
    classes = list(rows[0].get("probabilities", {})) if rows else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "prediction", *(f"p_{c}" for c in classes), "present"])
    for row in rows:
        probs = [f"{row['probabilities'][c]:.6f}" for c in classes]
        writer.writerow([row["id"], row["prediction"], *probs, ";".join(row["present"])])
    atomic_write_text(Path(out), buffer.getvalue())


def embed_inputs(run_dir: Path, modality: str, inputs: list[str], out: Path) -> tuple[int, int]:
    """Embeds inputs of one modality with the run's encoder and saves an (N, D) float32 ``.npy`` atomically."""
    features = embed(run_dir, modality, inputs)
    buffer = io.BytesIO()
    np.save(buffer, features)
    atomic_write_bytes(out, buffer.getvalue())
    return tuple(features.shape)


def embed(run_dir: Path, modality: str, inputs: list[Any], batch_size: int = 256) -> np.ndarray:
    """Embeds inputs of one modality (file paths, strings for text, or tensors shaped like one training input) with
    the run's encoder.

    A bridge run (``polymodal bridge``) embeds into its unified space, through whichever of its spaces has the
    modality.

    Returns:
        (N, D) float32 embeddings, computed ``batch_size`` inputs at a time.
    """
    check_modality(modality, "--modality")
    config, _, strategy = load_run(run_dir)
    if config.spaces is not None:
        return load_unified_space(run_dir).embed_items(modality, inputs).numpy()
    if modality not in strategy.model.modalities:
        raise ConfigError(
            f"--modality {modality}: the run has no {modality} encoder (it has: {', '.join(strategy.model.modalities)})"
        )
    parts = []
    for batch in item_batches(config.data, modality, inputs, batch_size):
        with torch.no_grad():
            parts.append(model_embeddings(strategy.model, batch["inputs"], batch["lengths"])[modality].float().numpy())
    return np.concatenate(parts)
