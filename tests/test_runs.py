"""End to end through the CLI: a user's own CSV manifest of real digits -> train -> eval -> embed, and the recipes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from torch.utils.data import Subset

import polymodal.data.sources
import polymodal.runs.provenance
import polymodal.runs.train
from polymodal.cli import main
from polymodal.config import load_config
from polymodal.data.avdigits import AVDigits
from polymodal.data.manifest import ManifestDataset
from polymodal.errors import TrainingError
from polymodal.recipes import bundled_recipes, recipe_summary

TRAIN = ["train", "manifest-joint", "data.train=train.csv", "data.test=test.csv", "data.target=label"]
FAST = ["trainer.epochs=2", "trainer.progress=false"]
METRIC_KEYS = {"task", "strategy", "seed", "params", "train_seconds", "val", "test", "per_modality", "missing"}
RECORD_KEYS = {"selected", "versions", "git_commit", "command"}  # what produced the run, and which weights


def train_in(folder: Path, *argv: str) -> Path:
    """Runs ``polymodal train`` with ``folder`` as the working directory; returns the run directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main([*argv, "--out", "RUN"]) == 0
    return folder / "RUN"


def rename_columns(manifest: Path, names: dict[str, str]) -> None:
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = ",".join(names.get(c, c) for c in lines[0].strip().split(",")) + "\n"
    manifest.write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory, digit_manifest_writer: Callable[..., Path]) -> Path:
    """A finished manifest-joint run on 60 training rows of image (png), audio (wav) and inline text."""
    root = tmp_path_factory.mktemp("user")
    digit_manifest_writer(root, "train.csv", rows=60)
    digit_manifest_writer(root, "test.csv", rows=20, offset=60)
    digit_manifest_writer(root, "other.csv", rows=10, offset=80)
    return train_in(root, *TRAIN, *FAST)


@pytest.mark.e2e
def test_run_directory(user_run: Path):
    root = user_run.parent
    config = yaml.safe_load((user_run / "config.yaml").read_text(encoding="utf-8"))
    # Resolved: every default filled in, data paths absolute so eval works from anywhere.
    assert config["data"]["train"] == str(root / "train.csv") and config["data"]["test"] == str(root / "test.csv")
    assert config["trainer"]["epochs"] == 2 and config["model"]["encoders"]["image"]["name"] == "lenet"
    assert load_config(str(user_run / "config.yaml")).model_dump(mode="json") == config

    info = json.loads((user_run / "run.json").read_text(encoding="utf-8"))
    assert info["task"] == "classification" and info["class_names"] == [str(d) for d in range(10)]
    assert info["modalities"] == ["image", "audio", "text"]
    assert info["columns"] == {"image": "image", "audio": "audio", "text": "text"}

    metrics = json.loads((user_run / "metrics.json").read_text(encoding="utf-8"))
    assert METRIC_KEYS | RECORD_KEYS <= set(metrics)
    best = json.loads((user_run / "checkpoints" / "best.json").read_text(encoding="utf-8"))
    assert metrics["selected"] == {"epoch": best["epoch"], "step": best["step"]} and best["epoch"] in (1, 2)
    assert set(metrics["versions"]) == {"polymodal", "python", "torch", "numpy"}
    assert metrics["command"] == sys.argv  # run in-process here: the test runner's command line
    package = polymodal.runs.provenance.PACKAGE_FOLDER
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True)
    assert metrics["git_commit"] == head.stdout.decode().strip()  # the tests run from a checkout
    assert (metrics["task"], metrics["strategy"], metrics["seed"]) == ("classification", "alternating", 0)
    assert metrics["params"] > 0 and metrics["train_seconds"] > 0 and metrics["epochs"] == 2
    for split in ("val", "test"):
        assert set(metrics[split]) == {"accuracy", "macro_f1"}
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    assert set(metrics["per_modality"]) == set(metrics["missing"]) == {"image", "audio", "text"}

    with (user_run / "log.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"step", "epoch", "name", "value"} <= set(rows[0])
    assert {"val_accuracy", "val_macro_f1"} <= {r["name"] for r in rows}

    checkpoints = user_run / "checkpoints"
    assert (checkpoints / "best.safetensors").is_file() and (checkpoints / "best.json").is_file()
    saved = sorted(p.stem for p in checkpoints.glob("*.safetensors"))
    assert saved == sorted(p.stem for p in checkpoints.glob("*.json")) and len(saved) >= 2
    assert not list(user_run.rglob("*.tmp"))
    plots = sorted(p.name for p in (user_run / "plots").glob("*.png"))
    assert "training_curves.png" in plots and "confusion_matrix.png" in plots
    for name in plots:
        with Image.open(user_run / "plots" / name) as image:
            assert image.width > 100 and image.height > 100


@pytest.mark.e2e
def test_eval_on_a_new_manifest(user_run: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the run's folder: config.yaml holds absolute paths
    assert main(["eval", str(user_run), "--data", str(user_run.parent / "other.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"] == str(user_run.parent / "other.csv") and result["examples"] == 10
    assert set(result["test"]) == {"accuracy", "macro_f1"}  # a new manifest is scored as a test split
    assert set(result["per_modality"]) == {"image", "audio", "text"}

    assert main(["eval", str(user_run), "--split", "val", "--json"]) == 0
    val = json.loads(capsys.readouterr().out)
    metrics = json.loads((user_run / "metrics.json").read_text(encoding="utf-8"))
    assert val["val"]["accuracy"] == pytest.approx(metrics["val"]["accuracy"])
    assert "test" not in val and "metrics" not in val


def test_eval_decodes_only_the_split_it_scores(user_run: Path, capsys, monkeypatch):
    decoded = []

    def recorded(path: Path, **options: object) -> ManifestDataset:
        decoded.append(Path(path).name)
        return ManifestDataset(path, **options)

    monkeypatch.setattr(polymodal.data.sources, "ManifestDataset", recorded)
    monkeypatch.setenv("POLYMODAL_CACHE", "off")
    assert main(["eval", str(user_run), "--json"]) == 0
    assert decoded == ["test.csv"]
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((user_run / "metrics.json").read_text(encoding="utf-8"))
    assert result["test"] == pytest.approx(metrics["test"]) and result["missing"] == metrics["missing"]


def test_eval_prints_a_summary_with_the_confusion_matrix(user_run: Path, capsys):
    assert main(["eval", str(user_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) - {"data", "examples"} <= set(json.loads((user_run / "metrics.json").read_text()))
    assert main(["eval", str(user_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    test, matrix = result["test"], result["confusion_matrix"]
    assert lines[:3] == [
        "test: 20 examples",
        f"test accuracy (all modalities): {test['accuracy']:.4f}",
        f"  image alone: {result['per_modality']['image']['accuracy']:.4f}",
    ]
    table = lines[lines.index("confusion matrix (rows: true class, columns: predicted):") + 1 :]
    assert table[0].split() == [str(d) for d in range(10)]  # the class names as column heads
    assert [row.split() for row in table[1:]] == [[str(d), *map(str, row)] for d, row in enumerate(matrix)]
    assert len({len(row) for row in table}) == 1  # aligned


@pytest.mark.e2e
def test_eval_on_a_manifest_without_the_run_columns(user_run: Path, tmp_path: Path, capsys):
    other = tmp_path / "wrong.csv"
    other.write_text("id,picture,label\n1,a.png,3\n", encoding="utf-8")
    assert main(["eval", str(user_run), "--data", str(other)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "wrong.csv: none of the run's input columns ('image', 'audio', 'text')" in line


@pytest.mark.e2e
def test_embed_images_audio_and_text(user_run: Path, tmp_path: Path, capsys):
    digits = np.zeros((28, 28), dtype=np.uint8)
    digits[6:22, 12:16] = 255
    Image.fromarray(digits, mode="L").save(tmp_path / "a.png")
    Image.fromarray(digits, mode="L").resize((40, 30)).convert("RGB").save(tmp_path / "b.png")
    wav = sorted((user_run.parent / "files").glob("test_*.wav"))[:3]
    cases = {
        "image": [str(tmp_path / "a.png"), str(tmp_path / "b.png")],
        "text": ["seven", "three"],
        "audio": [str(p) for p in wav],
    }
    for modality, inputs in cases.items():
        out = tmp_path / f"{modality}.npy"
        assert main(["embed", str(user_run), "--modality", modality, *inputs, "--out", str(out)]) == 0
        assert str(out) in capsys.readouterr().out
        embeddings = np.load(out, allow_pickle=False)
        assert embeddings.dtype == np.float32 and embeddings.shape == (len(inputs), 64)
        assert np.isfinite(embeddings).all()
    text = np.load(tmp_path / "text.npy")
    assert not np.allclose(text[0], text[1])


@pytest.mark.e2e
def test_embed_a_modality_the_run_lacks(user_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "e.npy"
    assert main(["embed", str(user_run), "--modality", "features", "x.npy", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--modality features" in line and "image, audio, text" in line
    assert not out.exists()


def test_declared_columns_and_missing_cells(tmp_path: Path, digit_manifest: Callable[..., Path]):
    digit_manifest("train.csv", rows=30, empty_audio=(0, 7))
    digit_manifest("test.csv", rows=10, offset=30, empty_audio=(0,))  # the first test row has no audio
    for name in ("train.csv", "test.csv"):
        rename_columns(tmp_path / name, {"image": "photo", "audio": "clip"})
    run = train_in(
        tmp_path,
        *TRAIN,
        *FAST,
        "data.modalities={photo: image, clip: audio}",  # the text column is not an input
        "model.encoders={image: {name: lenet, out_dim: 16}, audio: {name: spec_cnn, out_dim: 16}}",
    )
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["columns"] == {"image": "photo", "audio": "clip"}
    assert info["modalities"] == ["image", "audio"]
    # Fitted to the files: colour kept (a third of the images are RGB), audio at 8 kHz with clips long enough for
    # 90 % of the recordings.
    fitted = info["preprocessing"]["audio"]["chosen"]["max_frames"]
    assert info["shapes"] == {"image": [3, 28, 28], "audio": [1, 32, fitted]}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["per_modality"]) == {"image", "audio"}
    assert np.isfinite(metrics["test"]["accuracy"])


def test_features_column(tmp_path: Path, digit_manifest: Callable[..., Path], capsys):
    digit_manifest("train.csv", rows=40, columns=("text",), features=True)
    digit_manifest("test.csv", rows=10, offset=40, columns=("text",), features=True)
    run = train_in(tmp_path, *TRAIN, *FAST, "model.encoders={features: {name: transformer, dim: 16, depth: 1}}")
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["shapes"]["features"] == [6]
    # The text column has no encoder, so it is not scored as an input.
    assert info["modalities"] == ["features"]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["per_modality"]) == set(metrics["missing"]) == {"features"}
    capsys.readouterr()
    npy = sorted((tmp_path / "files").glob("test_*.npy"))[:2]
    out = tmp_path / "f.npy"
    assert main(["embed", str(run), "--modality", "features", *map(str, npy), "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 16)


def test_test_manifest_with_other_feature_dimension(tmp_path: Path, digit_manifest, capsys, monkeypatch):
    digit_manifest("train.csv", rows=20, columns=(), features=True)
    digit_manifest("test.csv", rows=10, offset=20, columns=(), features=True)
    for p in sorted((tmp_path / "files").glob("test_*.npy")):
        np.save(p, np.zeros((3, 5), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    argv = [*TRAIN, *FAST, "model.encoders={features: {name: transformer, dim: 16, depth: 1}}", "--out", "RUN"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "test.csv" in line and "'features'" in line and "(5,)" in line and "(6,)" in line
    assert not (tmp_path / "RUN").exists()


def test_failure_before_first_checkpoint_leaves_no_run_dir(tmp_path, digit_manifest, capsys, monkeypatch):
    digit_manifest("train.csv", rows=20, columns=("text",))
    digit_manifest("test.csv", rows=10, offset=20, columns=("text",))

    def diverge(self, *args, **kwargs):
        raise TrainingError("loss is nan at step 1")

    monkeypatch.setattr(polymodal.runs.train.Trainer, "fit", diverge)
    monkeypatch.chdir(tmp_path)
    encoders = "model.encoders={text: {name: transformer, dim: 16, depth: 1}}"
    argv = [*TRAIN, *FAST, encoders, "data.batch_size=8", "--out", "RUN"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "polymodal: error: loss is nan at step 1"
    assert not (tmp_path / "RUN").exists()


def test_avdigits_joint_smoke(tmp_path: Path, monkeypatch):
    # Scoring is most of the cost (each test sample is scored once per modality subset), so val and test are cut
    # to their first 300 samples here; the full demo scores all of them.
    def first_300(split: str, **kwargs: object) -> object:
        dataset = AVDigits(split, **kwargs)
        return dataset if split == "train" else Subset(dataset, range(300))

    monkeypatch.setattr(polymodal.data.sources, "AVDigits", first_300)
    argv = ["train", "avdigits-joint", "data.max_train_samples=256", "trainer.epochs=1", "trainer.progress=false"]
    run = train_in(tmp_path, *argv, "eval.noise_levels=[0.0, 1.0]")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert METRIC_KEYS <= set(metrics)
    assert metrics["train_examples"] == 256 and metrics["epochs"] == 1
    assert set(metrics["per_modality"]) == set(metrics["missing"]) == {"image", "audio", "text"}
    assert set(metrics["test"]) == {"accuracy", "macro_f1"}
    assert metrics["noise"]["levels"] == [0.0, 1.0]
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["columns"] is None
    timing = metrics["timing"]
    phases = ["data", "setup", "train", "validation", "final_report", "diagnosis", "plots"]
    assert set(timing) == {*phases, "total"} and all(v >= 0 for v in timing.values())
    assert sum(timing[p] for p in phases) == pytest.approx(timing["total"], abs=0.01)
    assert timing["train"] + timing["validation"] >= metrics["train_seconds"]


def test_phase_clock_keeps_timed_calls_out_of_the_enclosing_lap():
    now = iter([0.0, 2.0, 3.5, 7.0, 10.0]).__next__  # start, call start, call end, lap, lap
    clock = polymodal.runs.provenance.PhaseClock(now)
    assert clock.timed("validation", lambda x: x + 1)(1) == 2
    clock.lap("train")
    clock.lap("plots")
    assert clock.report() == {"validation": 1.5, "train": 5.5, "plots": 3.0, "total": 10.0}


@pytest.mark.parametrize("name", sorted(bundled_recipes()))
def test_bundled_recipe_loads(name: str):
    config = load_config(name)
    assert config.model.encoders or config.model.name != "multimodal"
    text = bundled_recipes()[name].read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header and any("polymodal train" in line or "polymodal bridge" in line for line in header)  # how to run it


def test_recipes_command_lists_each_with_its_summary(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    recipes = bundled_recipes()
    assert len(lines) == len(recipes)
    for line, name in zip(lines, sorted(recipes), strict=True):
        summary = recipe_summary(recipes[name])
        assert summary and line.split()[0] == name and line.endswith(summary)


def test_git_commit_only_where_git_tracks_the_package(tmp_path: Path):
    (tmp_path / "__init__.py").write_text("", encoding="utf-8")
    assert polymodal.runs.provenance.git_commit(tmp_path) is None  # not in a repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert polymodal.runs.provenance.git_commit(tmp_path) is None  # e.g. an installed copy inside a user's repository


def _without_column(source: Path, target: Path, drop: str, keep_label: bool = True) -> Path:
    """A copy of a manifest without one column (and without the label unless ``keep_label``), paths made absolute."""
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    header = [c for c in rows[0] if c != drop and (keep_label or c != "label")]
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            cells = {k: (str(source.parent / v) if k in ("image", "audio") and v else v) for k, v in row.items()}
            writer.writerow([cells[c] for c in header])
    return target


@pytest.mark.e2e
def test_inputs_fitted_to_the_files_and_laziness_diagnosed(user_run: Path):
    info = json.loads((user_run / "run.json").read_text(encoding="utf-8"))
    # The manifest mixes 28x28 gray, 32x32 RGB and 20x24 gray images, and 8 kHz mono / 16 kHz stereo audio.
    fitted = info["preprocessing"]
    assert fitted["image"]["chosen"] == {"size": 28, "channels": 3} and fitted["image"]["from"]["colour_files"] == 20
    assert fitted["audio"]["chosen"]["sample_rate"] == 8000 and fitted["audio"]["from"]["sample_rates_hz"] == [
        8000,
        16000,
    ]
    config = yaml.safe_load((user_run / "config.yaml").read_text(encoding="utf-8"))
    assert config["data"]["image"]["channels"] == 3 and info["shapes"]["image"] == [3, 28, 28]
    assert config["data"]["audio"]["max_frames"] == fitted["audio"]["chosen"]["max_frames"]
    diagnosis = json.loads((user_run / "metrics.json").read_text(encoding="utf-8"))["diagnosis"]
    assert set(diagnosis["modalities"]) == {"image", "audio", "text"} and 0 < diagnosis["chance"] < 1
    for m, row in diagnosis["modalities"].items():
        assert 0 <= row["reference"] <= 1 and row["lazy"] == any(line.startswith(m) for line in diagnosis["findings"])


@pytest.mark.e2e
def test_predict_without_labels_and_without_a_column(user_run: Path, tmp_path: Path, capsys):
    data = _without_column(user_run.parent / "other.csv", tmp_path / "unlabeled.csv", "audio", keep_label=False)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(user_run), "--data", str(data), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no values in column 'audio' (audio): treated as missing" in captured.err
    assert captured.out.strip() == f"wrote {out}: 10 predictions (inputs present: image 10/10, text 10/10)"
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [str(i) for i in range(80, 90)]
    assert list(rows[0]) == ["id", "prediction", *(f"p_{d}" for d in range(10)), "present"]
    for row in rows:
        probs = [float(row[f"p_{d}"]) for d in range(10)]
        assert abs(sum(probs) - 1) < 1e-4 and row["prediction"] == str(int(np.argmax(probs)))
        assert row["present"] == "image;text"
    # The same from Python.
    assert [r["prediction"] for r in polymodal.predict(user_run, data)] == [r["prediction"] for r in rows]

    # A bad cell: one line naming row and column, exit 2, nothing written.
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace(".png", "-gone.png")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bad_out = tmp_path / "bad.csv"
    assert main(["predict", str(user_run), "--data", str(data), "--out", str(bad_out)]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert "unlabeled.csv: row 3, column 'image': file not found" in error and not bad_out.exists()


@pytest.mark.e2e
def test_eval_scores_a_manifest_missing_a_column(user_run: Path, tmp_path: Path, capsys):
    data = _without_column(user_run.parent / "other.csv", tmp_path / "noaudio.csv", "audio")
    assert main(["eval", str(user_run), "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["missing_inputs"] == ["audio"] and "treated as missing" in captured.err
    assert set(result["per_modality"]) == {"image", "text"} and result["examples"] == 10


@pytest.mark.e2e
def test_two_image_columns_are_two_inputs(tmp_path: Path, digit_manifest_writer: Callable[..., Path]):
    for name, rows, offset in (("train.csv", 30, 0), ("test.csv", 10, 30)):
        manifest = digit_manifest_writer(tmp_path, name, rows=rows, offset=offset, columns=("image", "text"))
        lines = manifest.read_text(encoding="utf-8").splitlines()
        # A second view: the same file under another column (front, side).
        header = lines[0].replace("image", "front") + ",side"
        body = [line + "," + line.split(",")[1] for line in lines[1:]]
        manifest.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    run = train_in(tmp_path, *TRAIN, "trainer.epochs=1", "trainer.progress=false")
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["modalities"] == ["image:front", "text", "image:side"]
    assert info["columns"] == {"image:front": "front", "text": "text", "image:side": "side"}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["per_modality"]) == {"image:front", "image:side", "text"}
    rows = polymodal.predict(run, tmp_path / "test.csv")
    assert len(rows) == 10 and rows[0]["present"] == ["image:front", "text", "image:side"]


@pytest.mark.e2e
def test_manifest_recipe_on_a_regression_target(tmp_path: Path, digit_manifest: Callable[..., Path], capsys):
    digit_manifest("train.csv", rows=40, columns=("image", "text"))
    digit_manifest("test.csv", rows=10, offset=40, columns=("image", "text"))
    run = train_in(tmp_path, *TRAIN, "data.task=regression", "trainer.epochs=2", "data.batch_size=8")
    err = capsys.readouterr().err
    assert "selecting checkpoints on robust_mae instead of robust_accuracy" in err
    # The inputs as fitted to the files, said before training (28x28, some RGB: colour kept).
    assert "inputs:\n  image: 3x28x28 RGB (fitted to 40 files: size=28, channels=3)\n  text: byte tokens" in err
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["selection_metric"] == "robust_mae"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "regression" and np.isfinite(metrics["test"]["mae"])
    assert set(metrics["per_modality"]) == {"image", "text"} and "mae" in metrics["per_modality"]["image"]
    assert metrics["diagnosis"]["chance"] > 0 and set(metrics["diagnosis"]["modalities"]) == {"image", "text"}
    rows = polymodal.predict(run, tmp_path / "test.csv")
    assert all(isinstance(r["prediction"], float) and "probabilities" not in r for r in rows)
