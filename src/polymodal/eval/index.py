"""An embedding index for retrieval: exact cosine search by default, faiss (optional extra) for large galleries.

An index is a folder: ``vectors.npy`` (N, D) float32 unit vectors, ``index.json`` (ids, modality, backend,
parameters and the sha256 of every file) and, for ``faiss-ivf``, ``ivf.faiss`` (faiss's own binary format, checked
against its sha256 before faiss reads it). Nothing is pickled.

Backends:
    ``exact``: normalised dot product over the whole gallery (numpy/torch only).
    ``faiss-flat``: the same exact search with faiss's ``IndexFlatIP``.
    ``faiss-ivf``: approximate, ``IndexIVFFlat`` with ``nlist`` about sqrt(N) cells of which ``nprobe`` are visited.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.errors import ConfigError, DataError
from polymodal.fileio import atomic_write_text, read_json_object, sha256_file

BACKENDS: tuple[str, ...] = ("exact", "faiss-flat", "faiss-ivf")
FORMAT = "polymodal-index"
# Gallery rows scored at once by exact search: bounds the (Q, chunk) score matrix.
CHUNK = 262_144


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ConfigError("--backend faiss-*: faiss is not installed (pip install 'polymodal[faiss]')") from None
    return faiss


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def exact_search(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products of unit ``queries`` (Q, D) against a unit ``gallery`` (N, D), chunk by chunk.

    Returns:
        (scores, indices), each (Q, k), best first.
    """
    k = min(k, len(gallery))
    query = torch.from_numpy(queries)
    best_scores = torch.full((len(queries), 0), -math.inf)
    best_indices = torch.zeros((len(queries), 0), dtype=torch.long)
    for start in range(0, len(gallery), CHUNK):
        scores = query @ torch.from_numpy(gallery[start : start + CHUNK]).T  # (Q, chunk)
        top = scores.topk(min(k, scores.shape[1]), dim=1)
        merged_scores = torch.cat([best_scores, top.values], dim=1)
        merged_indices = torch.cat([best_indices, top.indices + start], dim=1)
        keep = merged_scores.topk(min(k, merged_scores.shape[1]), dim=1).indices
        best_scores, best_indices = merged_scores.gather(1, keep), merged_indices.gather(1, keep)
    return best_scores.numpy(), best_indices.numpy()


class EmbeddingIndex:
    """Unit-normalised embeddings with ids, searchable by cosine similarity.

    Args:
        vectors: (N, D) embeddings (normalised here).
        ids: N item names.
        modality: the modality the embeddings were computed from.
        backend: one of ``BACKENDS``.
        nlist: ``faiss-ivf`` cells (default about sqrt(N)).
        nprobe: ``faiss-ivf`` cells visited per query (default max(8, nlist / 8); more: higher recall, slower).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        ids: list[str],
        modality: str,
        backend: str = "exact",
        nlist: int | None = None,
        nprobe: int | None = None,
        _faiss_index: Any = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"--backend: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
        if vectors.ndim != 2 or len(vectors) != len(ids) or not len(ids):
            raise ConfigError(f"index: expected (N, D) vectors for N ids, got {vectors.shape} for {len(ids)}")
        self.vectors = normalise(vectors)
        self.ids, self.modality, self.backend = list(ids), modality, backend
        self.nlist = nlist or max(1, min(round(math.sqrt(len(ids))), len(ids) // 39 or 1))
        self.nprobe = nprobe or max(8, self.nlist // 8)
        self._faiss = _faiss_index if _faiss_index is not None else self._build_faiss()

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def _build_faiss(self) -> Any:
        if self.backend == "exact":
            return None
        faiss = _faiss()
        if self.backend == "faiss-flat":
            index = faiss.IndexFlatIP(self.dim)
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            # k-means on a seeded sample of 64 points per cell is plenty and keeps training time flat in N.
            rng = np.random.default_rng(0)
            sample = self.vectors[rng.choice(len(self.vectors), min(len(self.vectors), 64 * self.nlist), False)]
            index.train(sample)
        index.add(self.vectors)
        return index

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` gallery rows by cosine similarity for (Q, D) ``queries``; returns (scores, indices), (Q, k)."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ConfigError(f"query embeddings have shape {queries.shape} but the index holds dimension {self.dim}")
        queries = normalise(queries)
        if self._faiss is None:
            return exact_search(self.vectors, queries, k)
        if self.backend == "faiss-ivf":
            self._faiss.nprobe = self.nprobe
        return self._faiss.search(queries, min(k, len(self.ids)))

    def save(self, folder: Path) -> None:
        """Writes the index folder; ``index.json`` last, so its presence marks a complete index."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"vectors": "vectors.npy"}
        np.save(folder / "vectors.npy", self.vectors, allow_pickle=False)
        if self.backend == "faiss-ivf":
            _faiss().write_index(self._faiss, str(folder / "ivf.faiss"))
            files["faiss"] = "ivf.faiss"
        meta = {
            "format": FORMAT,
            "modality": self.modality,
            "backend": self.backend,
            "count": len(self.ids),
            "dim": self.dim,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "files": {k: {"file": f, "sha256": sha256_file(folder / f)} for k, f in files.items()},
            "ids": self.ids,
        }
        atomic_write_text(folder / "index.json", json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> EmbeddingIndex:
        """Reads an index folder, checking every file's sha256 first."""
        folder = Path(folder)
        path = folder / "index.json"
        if not path.is_file():
            raise DataError(f"{folder}: not an embedding index (no index.json; build one with `polymodal index build`)")
        meta = read_json_object(path)
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: not a {FORMAT} file")
        for entry in meta["files"].values():
            file = folder / entry["file"]
            if not file.is_file() or sha256_file(file) != entry["sha256"]:
                raise DataError(f"{file}: missing or checksum mismatch (rebuild the index)")
        vectors = np.load(folder / meta["files"]["vectors"]["file"], allow_pickle=False)
        faiss_index = None
        if meta["backend"] == "faiss-ivf":
            faiss_index = _faiss().read_index(str(folder / meta["files"]["faiss"]["file"]))
        return cls(vectors, meta["ids"], meta["modality"], meta["backend"], meta["nlist"], meta["nprobe"], faiss_index)


__all__ = ["BACKENDS", "EmbeddingIndex", "exact_search", "normalise"]
