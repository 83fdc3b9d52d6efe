"""polymodal bridge: both spaces and the Ex-MCR projector from one recipe; unified embed and cross-modal retrieve."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.config import load_config
from polymodal.data.sources import build_data

pytestmark = pytest.mark.e2e  # every test reads one multi-epoch bridge run

TINY = [
    "data.max_train_samples=600",
    "data.max_eval_samples=200",
    "trainer.epochs=3",
    "trainer.progress=false",
    'spaces.base.overrides=["data.train_part=[0, 2]", "trainer.epochs=1"]',
    'spaces.leaf.overrides=["data.train_part=[1, 2]", "trainer.epochs=1"]',
]


@pytest.fixture(scope="module")
def bridge_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bridge") / "RUN"
    assert main(["bridge", "exmcr-digits", *TINY, "--out", str(out)]) == 0
    return out


def test_bridge_run_writes_one_directory_and_keeps_the_base_space(bridge_run: Path):
    names = {p.name for p in bridge_run.iterdir()}
    assert {"config.yaml", "run.json", "metrics.json", "log.csv", "checkpoints", "plots", "index", "spaces"} <= names
    assert (bridge_run / "spaces" / "base" / "metrics.json").is_file()
    assert (bridge_run / "spaces" / "leaf" / "metrics.json").is_file()
    metrics = json.loads((bridge_run / "metrics.json").read_text())
    assert metrics["method"] == "exmcr" and metrics["base_unchanged"] is True
    best = json.loads((bridge_run / "checkpoints" / "best.json").read_text())
    assert metrics["selected"] == {"epoch": best["epoch"], "step": best["step"]}
    assert metrics["base_after"] == metrics["base_before"]
    for key in ("image_to_audio_r1", "audio_to_image_r1", "image_to_audio_map", "audio_to_image_r10"):
        assert 0.0 <= metrics["test"][key] <= 1.0
    # Every bank holds its own part of the split: 600 training samples, three banks (text, image, audio).
    assert metrics["banks"]["train"] == {"base/text": 200, "base/image": 200, "leaf/text": 200, "leaf/audio": 200}
    assert metrics["train_examples"] == 600  # one tuple per query of every bank
    losses = [float(r["value"]) for r in csv.DictReader((bridge_run / "log.csv").open()) if r["name"] == "val_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the projector learns on held-out pseudo-pairs


def _root_indices(dataset) -> list[int]:
    """The indices into the underlying dataset of nested ``Subset``s."""
    indices = list(range(len(dataset)))
    while hasattr(dataset, "indices"):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return indices


def test_spaces_are_trained_on_disjoint_halves_and_inherit_the_seed(bridge_run: Path):
    configs = {side: load_config(str(bridge_run / "spaces" / side / "config.yaml")) for side in ("base", "leaf")}
    assert configs["base"].data.train_part == (0, 2) and configs["leaf"].data.train_part == (1, 2)
    train = {side: _root_indices(build_data(c.data, c.trainer.seed, False).train) for side, c in configs.items()}
    assert len(train["base"]) == len(train["leaf"]) == 600  # max_train_samples picks within each half
    assert not set(train["base"]) & set(train["leaf"])
    assert configs["base"].trainer.seed == load_config(str(bridge_run / "config.yaml")).trainer.seed


def test_embed_and_retrieve_across_the_bridged_spaces(bridge_run: Path, tmp_path: Path, fsdd_writer, capsys):
    from scipy.io import wavfile

    (wav,) = fsdd_writer(tmp_path / "fsdd", digits=range(3, 4), speakers=("george",), takes=range(1)).iterdir()
    assert main(["embed", str(bridge_run), "--modality", "audio", str(wav), "--out", str(tmp_path / "a.npy")]) == 0
    audio = np.load(tmp_path / "a.npy")
    assert audio.shape == (1, 64)
    np.testing.assert_allclose(np.linalg.norm(audio), 1.0, rtol=1e-5)
    rate, _ = wavfile.read(wav)
    assert rate == 8000
    capsys.readouterr()
    assert main(["retrieve", str(bridge_run), "--from", "audio", "--to", "image", str(wav), "--top-k", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["query"] == str(wav) and len(result["results"]) == 3
    assert all(r["id"].startswith("test-") for r in result["results"])
    # The gallery of another modality is refused, and a missing modality gallery is one clear error.
    index = str(bridge_run / "index" / "text")
    assert main(["retrieve", str(bridge_run), "--from", "audio", "--to", "image", "--index", index, str(wav)]) == 2
    assert "holds text embeddings" in capsys.readouterr().err


def test_resume_after_the_spaces_reuses_them_and_gives_the_same_bridge(bridge_run: Path, tmp_path: Path):
    # As if killed right after both spaces finished: only config.yaml and spaces/ exist.
    out = tmp_path / "R"
    shutil.copytree(bridge_run / "spaces", out / "spaces")
    shutil.copy(bridge_run / "config.yaml", out / "config.yaml")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "spaces").rglob("metrics.json")}
    assert main(["bridge", "exmcr-digits", *TINY, "--out", str(out)]) == 2  # not empty: needs --resume
    assert main(["bridge", "exmcr-digits", *TINY, "--out", str(out), "--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the spaces were not retrained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == json.loads((bridge_run / "metrics.json").read_text())["test"]
    assert main(["bridge", "exmcr-digits", *TINY, "--out", str(out), "--resume"]) == 2  # finished


def test_eval_of_a_bridge_run_recomputes_its_test_retrieval(bridge_run: Path, capsys):
    capsys.readouterr()
    assert main(["eval", str(bridge_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((bridge_run / "metrics.json").read_text())["test"]
    assert result["examples"] == 200 and result["test"] == pytest.approx(saved)
    assert main(["eval", str(bridge_run)]) == 0  # the summary: every retrieval score, one a line
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["test: 200 examples", "test:"]
    assert lines[2:] == [f"  {k}: {v:.4f}" for k, v in result["test"].items()]


def test_cmcr_baseline_reuses_the_spaces_and_moves_the_base_space(bridge_run: Path, tmp_path: Path):
    spaces = bridge_run / "spaces"
    argv = [
        "bridge", "exmcr-digits", *TINY[:4], "model.name=cmcr", "model.options={dim: 32}",
        "spaces.queries=overlap", f"spaces.base={{run: {spaces / 'base'}}}", f"spaces.leaf={{run: {spaces / 'leaf'}}}",
        "--out", str(tmp_path / "C"),
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "C" / "metrics.json").read_text())
    assert metrics["method"] == "cmcr" and metrics["base_unchanged"] is False
    assert metrics["train_examples"] == 200  # text-centric queries only
    assert not (tmp_path / "C" / "spaces").exists()


def test_bad_bridge_configs_are_one_line_errors_and_write_nothing(tmp_path: Path, capsys):
    out = tmp_path / "X"
    assert main(["bridge", "avdigits-joint", "--out", str(out)]) == 2
    assert "a bridge recipe needs a spaces section" in capsys.readouterr().err
    assert main(["bridge", "exmcr-digits", "spaces.base={run: /nonexistent}", "--out", str(out)]) == 2
    assert "spaces.base.run: /nonexistent: not a polymodal run directory" in capsys.readouterr().err
    assert main(["bridge", "exmcr-digits", "spaces.leaf={run: a, recipe: b}", "--out", str(out)]) == 2
    assert "give exactly one of run, recipe or pretrained" in capsys.readouterr().err
    assert (
        main(["bridge", "exmcr-digits", "spaces.base={pretrained: clap, path: /nonexistent}", "--out", str(out)]) == 2
    )
    assert "spaces.base.path: /nonexistent: not found" in capsys.readouterr().err
    assert main(["bridge", "exmcr-digits", "spaces.overlap=smell", "--out", str(out)]) == 2
    assert "unknown modality 'smell'" in capsys.readouterr().err
    assert not out.exists()
