"""Bad input gets a clear error: one line on stderr naming the file or key, exit status 2, nothing half-written."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import wavfile

import polymodal
from polymodal.cli import main
from polymodal.config import load_config

TRAIN = ["train", "manifest-joint", "data.train=train.csv", "data.test=test.csv", "data.target=label"]
QUIET = "trainer.progress=false"  # no progress bars, so stderr holds only the error line
FAST = ["trainer.epochs=1", QUIET]


def fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    """Runs the CLI in-process and checks the error contract; returns the error line."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("polymodal: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> its sha256, to prove nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def small_data(
    tmp_path: Path, digit_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Writes tiny train.csv/test.csv in ``tmp_path`` (the working directory) and returns the files folder."""
    monkeypatch.chdir(tmp_path)

    def make(**kwargs: object) -> Path:
        digit_manifest("train.csv", rows=20, **kwargs)
        digit_manifest("test.csv", rows=10, offset=20, **kwargs)
        return tmp_path / "files"

    return make


# 1-5: bad data files referenced by a manifest


def test_missing_file(capsys, tmp_path, small_data):
    files = small_data(columns=("image", "text"))
    (files / "train_4.png").unlink()
    fails_cleanly(
        capsys, [*TRAIN, QUIET, "--out", "RUN"], "train.csv", "row 5", "'image'", "file not found", "train_4.png"
    )
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)), "not a readable WAV file"),
        (lambda p: wavfile.write(p, 8000, np.zeros(0, dtype=np.int16)), "contains no samples"),
    ],
    ids=["corrupt", "empty"],
)
def test_bad_wav(capsys, tmp_path, small_data, write, problem):
    files = small_data(columns=("audio", "text"))
    write(files / "train_2.wav")
    fails_cleanly(capsys, [*TRAIN, QUIET, "--out", "RUN"], "train.csv", "row 3", "'audio'", "train_2.wav", problem)
    assert not (tmp_path / "RUN").exists()


def test_unreadable_image(capsys, tmp_path, small_data):
    files = small_data(columns=("image", "text"))
    (files / "train_0.png").write_bytes(b"this is not a png" * 20)
    fails_cleanly(capsys, [*TRAIN, QUIET, "--out", "RUN"], "train.csv", "row 1", "train_0.png", "not a readable image")
    assert not (tmp_path / "RUN").exists()


class _Trap:
    """Unpickling this creates the file ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((2, 3, 6), dtype=np.float32), "expected shape (D,) or (T, D), got shape (2, 3, 6)"),
        (np.array(["one", "two"]), "expected a numeric array, got dtype <U3"),
        ("pickle", "pickled Python objects, which are refused"),
    ],
    ids=["3d", "strings", "object"],
)
def test_bad_npy(capsys, tmp_path, small_data, array, problem):
    files = small_data(columns=("text",), features=True)
    marker = tmp_path / "unpickled"
    if isinstance(array, str):
        array = np.array([_Trap(str(marker)), 1], dtype=object)
    np.save(files / "train_6.npy", array, allow_pickle=True)
    fails_cleanly(capsys, [*TRAIN, QUIET, "--out", "RUN"], "train.csv", "row 7", "'features'", "train_6.npy", problem)
    assert not marker.exists()
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(capsys, tmp_path, small_data, bad):
    files = small_data(columns=("text",), features=True)
    array = np.ones((4, 6), dtype=np.float32)
    array[1, 2] = bad
    np.save(files / "test_23.npy", array)
    fails_cleanly(
        capsys, [*TRAIN, QUIET, "--out", "RUN"], "test.csv", "row 4", "test_23.npy", "contains NaN or inf values"
    )
    assert not (tmp_path / "RUN").exists()


def test_too_few_rows_to_carve_validation(capsys, tmp_path, digit_manifest, monkeypatch):
    monkeypatch.chdir(tmp_path)
    digit_manifest("train.csv", rows=10, columns=("text",))  # one row per class: nothing to spare
    digit_manifest("test.csv", rows=10, offset=10, columns=("text",))
    fails_cleanly(capsys, [*TRAIN, QUIET, "--out", "RUN"], "train.csv", "validation split", "data.val")
    assert not (tmp_path / "RUN").exists()


def test_missing_target_column(capsys, tmp_path, small_data):
    small_data(columns=("text",))
    argv = [*TRAIN[:-1], "data.target=digit", QUIET, "--out", "RUN"]
    fails_cleanly(capsys, argv, "train.csv", "target column 'digit' not found", "label")
    assert not (tmp_path / "RUN").exists()


# 7-10: bad recipes and overrides


def test_bad_yaml(capsys, tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("data:\n  name: manifest\n  train: [a.csv\ntrainer: {epochs: 1}\n", encoding="utf-8")
    fails_cleanly(capsys, ["train", str(recipe), "--out", str(tmp_path / "RUN")], "broken.yaml", "invalid YAML")
    assert not (tmp_path / "RUN").exists()


def test_unknown_recipe(capsys, tmp_path):
    line = fails_cleanly(capsys, ["train", "no-such-recipe", "--out", str(tmp_path / "RUN")], "'no-such-recipe'")
    assert "manifest-joint" in line  # lists the bundled recipes
    assert not (tmp_path / "RUN").exists()


def test_unknown_key_in_recipe(capsys, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("model:\n  encoders: {image: {name: lenet}}\ntrainer:\n  epochz: 3\n", encoding="utf-8")
    fails_cleanly(capsys, ["train", str(recipe), "--out", str(tmp_path / "RUN")], "typo.yaml", "trainer.epochz")
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("trainer.epochs=abc", ("trainer.epochs", "integer")),
        ("trainer.epochz=3", ("trainer.epochz", "unknown key")),
        ("model.encoders.image.widht=8", ("model.encoders.image.widht", "unknown key")),
        ("model.fusion.name=nope", ("model.fusion.name", "'nope'", "concat")),
    ],
)
def test_bad_override(capsys, tmp_path, override, fragments):
    fails_cleanly(capsys, ["train", "avdigits-joint", override, "--out", str(tmp_path / "RUN")], *fragments)
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("data.modalities={col: smell}", ("data.modalities", "'smell'", "image, audio, text, features")),
        ("data.modalities=[smell]", ("data.modalities", "'smell'")),
        ("model.encoders={smell: {name: lenet}}", ("model.encoders", "'smell'", "image, audio, text, features")),
    ],
)
def test_unknown_modality(capsys, tmp_path, override, fragments):
    fails_cleanly(capsys, ["train", "manifest-joint", override, "--out", str(tmp_path / "RUN")], *fragments)
    assert not (tmp_path / "RUN").exists()


# 11: eval / embed on a directory that is not a trained run


@pytest.mark.parametrize("contents", ["empty", "config-only", "no-checkpoint"])
@pytest.mark.parametrize("command", ["eval", "embed"])
def test_eval_embed_without_checkpoints(capsys, tmp_path, contents, command):
    run = tmp_path / "RUN"
    run.mkdir()
    if contents != "empty":
        (run / "config.yaml").write_text("model:\n  encoders: {image: {name: lenet}}\n", encoding="utf-8")
    if contents == "no-checkpoint":
        (run / "run.json").write_text("{}", encoding="utf-8")
        (run / "checkpoints").mkdir()
    before = snapshot(run)
    out = tmp_path / "e.npy"
    argv = (
        ["eval", str(run)] if command == "eval" else ["embed", str(run), "--modality", "text", "hi", "--out", str(out)]
    )
    fails_cleanly(capsys, argv, str(run))
    assert snapshot(run) == before
    assert not out.exists()


def test_eval_missing_run_dir(capsys, tmp_path):
    fails_cleanly(capsys, ["eval", str(tmp_path / "nowhere")], "nowhere", "not a polymodal run directory")


# 12: --resume on a finished run and on a foreign run


@pytest.fixture
def finished_run(tmp_path: Path, small_data: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> Path:
    small_data(columns=("text",))
    args = [*TRAIN, *FAST, "model.encoders={text: {name: transformer, dim: 16, depth: 1, heads: 2}}"]
    assert main([*args, "--out", "RUN"]) == 0
    capsys.readouterr()
    return tmp_path / "RUN"


def test_resume_refuses_finished_and_foreign_runs(capsys, finished_run):
    args = [*TRAIN, *FAST, "model.encoders={text: {name: transformer, dim: 16, depth: 1, heads: 2}}"]
    before = snapshot(finished_run)
    # The README's example on a finished run: the error says what to do instead.
    fails_cleanly(capsys, ["train", "--resume", "--out", "RUN"], "RUN", "already finished", "`polymodal eval RUN`")
    fails_cleanly(capsys, [*args, "--out", "RUN", "--resume"], "RUN", "already finished", "metrics.json")
    assert snapshot(finished_run) == before

    # An interrupted run (no metrics.json) resumed with a different config is someone else's run.
    (finished_run / "metrics.json").unlink()
    before = snapshot(finished_run)
    fails_cleanly(capsys, [*args, "trainer.seed=5", "--out", "RUN", "--resume"], "RUN", "trainer.seed")
    assert snapshot(finished_run) == before

    # Not resuming: an existing run directory is never overwritten.
    fails_cleanly(capsys, [*args, "--out", "RUN"], "RUN", "already exists")
    assert snapshot(finished_run) == before


def test_resume_from_the_run_directory_alone(capsys, finished_run, monkeypatch):
    (finished_run / "metrics.json").unlink()  # as if killed after its last checkpoint
    before = snapshot(finished_run)
    # Overrides that change the saved config are refused by name, with both values.
    fails_cleanly(
        capsys,
        ["train", "--resume", "--out", "RUN", "trainer.seed=5", "trainer.epochs=2", "data.batch_size=64"],
        "RUN",
        "trainer.epochs=2 (the run has 1); trainer.seed=5 (the run has 0);",  # batch_size=64 is the run's own
        "resume with `polymodal train --resume --out RUN` alone",
    )
    assert snapshot(finished_run) == before
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 3600.0)  # stage and epoch lines only
    # How it reports progress is not part of a run's config: a quiet run may be resumed with progress.
    assert main(["train", "--resume", "--out", "RUN", "trainer.progress=true"]) == 0
    captured = capsys.readouterr()
    assert "run directory: RUN" in captured.out and (finished_run / "metrics.json").is_file()
    # Stage lines (the fitted inputs and the warning that 18 rows make one batch are said too).
    lines = [line for line in captured.err.splitlines() if not line.startswith(("polymodal: warning", "inputs:", "  "))]
    assert lines[0].startswith("reading data: manifest (train.csv, test.csv)")
    # Decoded when the run started: read back from the decode cache.
    assert lines[1].startswith("train.csv: 20 rows read from the decode cache (")
    assert lines[2].startswith("test.csv: 10 rows read from the decode cache (")
    assert lines[3].startswith("data: 18 train, 2 val, 10 test samples (text) in ")
    assert lines[4].startswith("resuming from ckpt-") and lines[5].startswith("training: 1 epochs of ")
    assert lines[6].startswith("evaluating the selected weights (epoch 1, step ")  # the epoch was already done
    assert len(lines) == 7


def test_a_torch_free_command_line(tmp_path):
    """Commands that train nothing answer without importing torch (seconds saved on each)."""
    (tmp_path / "broken.yaml").write_text("data: [oops\n", encoding="utf-8")
    code = (
        "import sys\nfrom polymodal.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'pydantic'}))"
    )
    answers = {
        "recipes": "avdigits-joint ",
        "--version": f"polymodal {polymodal.__version__}",
        "--help": "usage: polymodal",
        "train --bogus": "unrecognized arguments: --bogus",
        "train avdigits-jiont": "did you mean 'avdigits-joint'?",
        "train broken.yaml": "broken.yaml: line 2, column 1: invalid YAML",
        "train avdigits-joint trainer.epochs": "expected key.path=value",
    }
    for argv, answer in answers.items():
        done = subprocess.run(
            [sys.executable, "-c", code, *argv.split()], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.stdout.splitlines()[-1] == "[]", (argv, done.stdout, done.stderr)
        assert answer in done.stdout + done.stderr and "Traceback" not in done.stderr, argv


def test_a_config_error_in_a_section_answers_without_torch(tmp_path):
    """Unknown keys, types and ranges are found before the registries (and torch) are imported; a component spec's
    error (an unknown encoder) is found after, with the same one-line form."""
    code = "import sys\nfrom polymodal.cli import main\nprint(main(sys.argv[1:]), 'torch' in sys.modules)"
    answers = {
        "train avdigits-joint trainer.lr=1": ("trainer.lr: unknown key (did you mean trainer.optimizer.lr?)", False),
        "config avdigits-joint trainer.epochs=0": ("trainer.epochs: Input should be greater than or equal to 1", False),
        "config avdigits-joint trainer.seed=one": ("trainer.seed: Input should be a valid integer", False),
        "config avdigits-joint data.image.size=0": ("data.image.size: Input should be greater than 0", False),
        "config avdigits-joint data.augment.text.typo=1": ("data.augment.text.typo: Input should be less", False),
        "config avdigits-joint data.modalities=[imag]": ("data.modalities: unknown modality 'imag'", False),
        "config avdigits-joint model.encoders.image.name=lenett": ("did you mean 'lenet'?", True),
    }
    for argv, (answer, torch_imported) in answers.items():
        done = subprocess.run(
            [sys.executable, "-c", code, *argv.split()], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.stdout.split() == ["2", str(torch_imported)], (argv, done.stdout, done.stderr)
        recipe = "avdigits-joint.yaml with overrides: "
        assert done.stderr.startswith("polymodal: error: ") and recipe in done.stderr, (argv, done.stderr)
        assert answer in done.stderr and len(done.stderr.splitlines()) == 1, (argv, done.stderr)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"polymodal {polymodal.__version__}\n"


def test_config_prints_the_resolved_config_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "avdigits-joint", "trainer.epochs=7", "data.root=."]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = load_config("avdigits-joint", ["trainer.epochs=7", f"data.root={tmp_path}"])
    assert printed == expected.model_dump(mode="json")  # every default filled in, data paths absolute
    assert list(tmp_path.iterdir()) == []
    fails_cleanly(capsys, ["config", "avdigits-joint", "trainer.lr=1"], "trainer.lr", "trainer.optimizer.lr")


def test_unknown_recipe_suggests_the_closest(capsys, tmp_path):
    fails_cleanly(capsys, ["train", "avdigits-jiont", "--out", str(tmp_path / "RUN")], "did you mean 'avdigits-joint'?")


def test_tensorboard_without_the_package(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    argv = ["train", "avdigits-joint", "trainer.log_to=[csv, tensorboard]", QUIET, "--out", str(tmp_path / "RUN")]
    fails_cleanly(capsys, argv, "trainer.log_to", "pip install 'polymodal[tensorboard]'")
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (lambda run: (run / "config.yaml").write_text("data: [oops\n", encoding="utf-8"), ("config.yaml", "YAML")),
        (lambda run: (run / "run.json").write_text("{oops", encoding="utf-8"), ("run.json", "not valid JSON")),
        (
            lambda run: (run / "checkpoints" / "best.safetensors").write_bytes(b"\0" * 64),
            ("best.safetensors", "checksum mismatch"),
        ),
    ],
    ids=["config", "run-json", "weights"],
)
def test_eval_on_a_damaged_run(capsys, finished_run, damage, fragments):
    damage(finished_run)
    before = snapshot(finished_run)
    fails_cleanly(capsys, ["eval", str(finished_run)], *fragments)
    out = finished_run.parent / "e.npy"
    fails_cleanly(capsys, ["embed", str(finished_run), "--modality", "text", "hi", "--out", str(out)], *fragments)
    assert snapshot(finished_run) == before
    assert not out.exists()


def test_resume_needs_a_run_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails_cleanly(capsys, ["train", "avdigits-joint", "--resume"], "--resume", "--out")
    fails_cleanly(capsys, ["train", "avdigits-joint", "--resume", "--out", "RUN"], "RUN", "nothing to resume")
    assert not (tmp_path / "RUN").exists()
    assert not (tmp_path / "runs").exists()


# The real command: no traceback, exit status 2.


def _polymodal(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polymodal", *argv], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_subprocess_bad_override(tmp_path):
    result = _polymodal("train", "manifest-joint", "trainer.epochs=abc", "--out", "RUN", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("polymodal: error: ") and "trainer.epochs" in line
    assert not (tmp_path / "RUN").exists()


def test_subprocess_corrupt_wav(tmp_path, digit_manifest):
    digit_manifest("train.csv", rows=20, columns=("audio",))
    digit_manifest("test.csv", rows=4, offset=20, columns=("audio",))
    (tmp_path / "files" / "test_22.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    result = _polymodal(*TRAIN[:2], *TRAIN[2:], *FAST, "--out", "RUN", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("polymodal: error: ")
    assert "test.csv" in line and "test_22.wav" in line and "not a readable WAV file" in line
    assert not (tmp_path / "RUN").exists()


def test_overrides_may_follow_options(monkeypatch):
    seen = {}

    def fake_train(recipe, overrides, out, resume, imports):
        seen.update(recipe=recipe, overrides=overrides, out=out)
        return {"test": {"r1": 1.0}, "params": 1, "train_seconds": 0.0, "device": "cpu"}

    monkeypatch.setattr("polymodal.cli._train", fake_train)
    assert main(["train", "avdigits-joint", "trainer.seed=1", "--out", "X", "trainer.epochs=2"]) == 0
    assert seen == {"recipe": "avdigits-joint", "overrides": ["trainer.seed=1", "trainer.epochs=2"], "out": "X"}
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "trainer.epochs=2"])  # a command without overrides
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["train", "avdigits-joint", "--out", "X", "--bogus"])
