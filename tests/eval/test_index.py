"""The embedding index: exact cosine search against a hand-computed case, faiss backends, and safe storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polymodal.errors import ConfigError, DataError
from polymodal.eval import index as index_module
from polymodal.eval.index import EmbeddingIndex, exact_search


def test_exact_search_by_hand() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=np.float32)
    index = EmbeddingIndex(gallery, ["x", "y", "d"], "text")
    scores, rows = index.search(np.array([[2.0, 1.0]], dtype=np.float32), k=2)
    # cos to x = 2/sqrt(5) = 0.894, to d = 3/sqrt(10) = 0.949, to y = 1/sqrt(5) = 0.447
    assert rows.tolist() == [[2, 0]]
    np.testing.assert_allclose(scores, [[3 / np.sqrt(10), 2 / np.sqrt(5)]], rtol=1e-6)


def test_exact_search_merges_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((50, 4)).astype(np.float32)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    whole = exact_search(gallery, queries, 5)
    monkeypatch.setattr(index_module, "CHUNK", 7)
    chunked = exact_search(gallery, queries, 5)
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)


def test_save_load_round_trip_and_corruption(tmp_path: Path) -> None:
    vectors = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    EmbeddingIndex(vectors, [f"i{n}" for n in range(6)], "image").save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert loaded.ids == [f"i{n}" for n in range(6)] and loaded.modality == "image"
    assert loaded.search(vectors[4:5], 1)[1].tolist() == [[4]]
    data = bytearray((tmp_path / "idx/vectors.npy").read_bytes())
    data[-1] ^= 0x01
    (tmp_path / "idx/vectors.npy").write_bytes(bytes(data))
    with pytest.raises(DataError, match="vectors.npy: missing or checksum mismatch"):
        EmbeddingIndex.load(tmp_path / "idx")


def test_query_of_another_dimension_is_refused() -> None:
    index = EmbeddingIndex(np.eye(3, dtype=np.float32), ["a", "b", "c"], "text")
    with pytest.raises(ConfigError, match="dimension 3"):
        index.search(np.ones((1, 4), dtype=np.float32))


def test_faiss_backends_agree_with_exact(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((8, 16))
    gallery = (centres[rng.integers(0, 8, 400)] + 0.05 * rng.standard_normal((400, 16))).astype(np.float32)
    queries = gallery[:20] + 0.01
    ids = [str(n) for n in range(400)]
    exact = EmbeddingIndex(gallery, ids, "features").search(queries, 10)
    flat = EmbeddingIndex(gallery, ids, "features", "faiss-flat").search(queries, 10)
    np.testing.assert_array_equal(flat[1], exact[1])
    ivf = EmbeddingIndex(gallery, ids, "features", "faiss-ivf")
    ivf.save(tmp_path / "ivf")
    found = EmbeddingIndex.load(tmp_path / "ivf").search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact[1], strict=True)])
    assert recall >= 0.9  # clustered data and nprobe 8 of 20 cells: IVF finds nearly every true neighbour
