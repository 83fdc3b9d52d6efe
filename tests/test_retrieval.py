"""Index build and retrieve through the command line, on a tiny trained text run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from polymodal.cli import main
from polymodal.eval.index import EmbeddingIndex

TINY = [
    "data.train=train.csv",
    "data.test=test.csv",
    "data.target=label",
    "trainer.epochs=1",
    "trainer.progress=false",
    "trainer.device=cpu",
    "model.encoders={text: {name: transformer, dim: 8, depth: 1, heads: 2}}",
    "model.head={name: mlp, hidden: 16}",
    "eval.noise_levels=[0.0]",
    "data.text.max_length=16",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, digit_manifest_writer: Callable[..., Path]) -> Path:
    """A text-only manifest run on 20 rows: small enough to train in a few seconds."""
    root = tmp_path_factory.mktemp("retrieval")
    digit_manifest_writer(root, "train.csv", rows=20, columns=("text",))
    digit_manifest_writer(root, "test.csv", rows=10, offset=20, columns=("text",))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["train", "manifest-joint", *TINY, "--out", "run"]) == 0
    return root / "run"


def test_build_then_retrieve_finds_the_identical_item(run: Path, tmp_path: Path, capsys) -> None:
    words = ["zero", "one", "two", "three", "seven", "eight"]
    gallery = tmp_path / "gallery.csv"
    gallery.write_text("id,caption\n" + "".join(f"w{i},{w}\n" for i, w in enumerate(words)) + "w9,\n")
    build = ["index", "build", str(run), "--modality", "text", str(gallery), "--column", "caption"]
    assert main([*build, "--out", str(tmp_path / "idx")]) == 0
    assert "6 text embeddings" in capsys.readouterr().out  # the empty cell is not an item
    assert EmbeddingIndex.load(tmp_path / "idx").ids == [f"w{i}" for i in range(6)]
    query = ["retrieve", str(run), "--index", str(tmp_path / "idx"), "--modality", "text", "seven", "two"]
    assert main([*query, "--top-k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["query"] for line in lines] == ["seven", "two"]
    assert [line["results"][0]["id"] for line in lines] == ["w4", "w2"]
    assert all(len(line["results"]) == 3 for line in lines)
    assert lines[0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_bad_column_and_missing_index_are_one_line(run: Path, tmp_path: Path, capsys) -> None:
    gallery = tmp_path / "gallery.csv"
    gallery.write_text("id,caption\n1,seven\n")
    assert main(["index", "build", str(run), "--modality", "text", str(gallery), "--out", str(tmp_path / "i")]) == 2
    assert "column 'text' not found" in capsys.readouterr().err
    assert main(["retrieve", str(run), "--index", str(tmp_path / "nowhere"), "--modality", "text", "seven"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "not an embedding index" in line
