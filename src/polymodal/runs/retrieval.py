"""Build an embedding index from a trained run and search it: the functions behind ``polymodal index build`` and
``polymodal retrieve``.

A gallery is a CSV manifest (the same format as training data): one item per row, its ``id`` column (or its row
number) naming it. Queries are embedded with the run's encoder for their modality and searched in the index, so a
query modality other than the index's (cross-modal retrieval) only needs both encoders to share a space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polymodal.data.manifest import ID_COLUMN, read_manifest
from polymodal.errors import ConfigError, DataError
from polymodal.eval.index import EmbeddingIndex
from polymodal.runs.inference import embed


def gallery_items(manifest: Path, column: str) -> tuple[list[str], list[str]]:
    """The non-empty cells of ``column`` (file paths resolved against the manifest's folder) and their ids."""
    header, rows = read_manifest(manifest)
    if column not in header:
        raise ConfigError(f"{manifest}: column {column!r} not found (columns: {', '.join(header)}; use --column)")
    ids, inputs = [], []
    for number, row in enumerate(rows, start=1):
        cell = row[column]
        if not cell:
            continue
        ids.append(row[ID_COLUMN] if row.get(ID_COLUMN) else str(number))
        inputs.append(cell)
    if not inputs:
        raise DataError(f"{manifest}: column {column!r} is empty in every row")
    return ids, inputs


def build_index(
    run_dir: Path, modality: str, manifest: Path, out: Path, backend: str = "exact", column: str | None = None
) -> EmbeddingIndex:
    """Embeds a manifest column with the run's ``modality`` encoder and saves the index to ``out``.

    Args:
        run_dir: a trained run.
        modality: which encoder embeds the gallery.
        manifest: CSV manifest of the gallery.
        out: the index folder to write.
        backend: ``exact``, ``faiss-flat`` or ``faiss-ivf``.
        column: the manifest column (default: the run's column for ``modality``, else a column named ``modality``).
    """
    manifest = Path(manifest)
    if (Path(out) / "index.json").exists():
        raise ConfigError(f"{out}: already holds an index; choose another --out")
    if column is None:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")) if Path(run_dir).is_dir() else {}
        column = (info.get("columns") or {}).get(modality, modality)
    ids, cells = gallery_items(manifest, column)
    if modality != "text":
        cells = [str(path if (path := Path(c).expanduser()).is_absolute() else manifest.parent / path) for c in cells]
    index = EmbeddingIndex(embed(run_dir, modality, cells), ids, modality, backend)
    index.save(Path(out))
    return index


def retrieve(
    run_dir: Path, index_dir: Path, modality: str, queries: list[str], top_k: int = 10, to: str | None = None
) -> list[dict[str, Any]]:
    """The ``top_k`` gallery items for each query (file paths, or strings for text) embedded with ``modality``.

    Args:
        run_dir: the run whose encoders (or, for a bridge run, unified space) embed the queries.
        index_dir: the gallery's index.
        modality: the queries' modality.
        queries: file paths, or strings for text.
        top_k: how many results per query.
        to: the gallery modality the caller expects; an index of another modality is an error.

    Returns:
        One ``{"query", "results": [{"id", "score"}, ...]}`` per query, best first.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k: must be at least 1, got {top_k}")
    if not (Path(index_dir) / "index.json").is_file() and to is not None:
        raise ConfigError(f"{index_dir}: no {to} index there (build one with `polymodal index build`, or give --index)")
    index = EmbeddingIndex.load(Path(index_dir))
    if to is not None and index.modality != to:
        raise ConfigError(f"--to {to}: the index {index_dir} holds {index.modality} embeddings")
    scores, rows = index.search(embed(run_dir, modality, queries), top_k)
    return [
        {
            "query": query,
            "results": [
                {"id": index.ids[r], "score": round(float(s), 6)} for s, r in zip(ss, rr, strict=True) if r >= 0
            ],
        }
        for query, ss, rr in zip(queries, scores, rows, strict=True)
    ]


__all__ = ["build_index", "gallery_items", "retrieve"]
