"""The run directory helper every kind of run writes through (``polymodal.runs.rundir.RunDir``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from torch import nn

from polymodal.config import load_config, validate_config
from polymodal.errors import ConfigError
from polymodal.recipe_files import read_yaml
from polymodal.runs.rundir import RunDir


@pytest.fixture
def config():
    return load_config("avdigits-joint", ["trainer.epochs=1"])


def test_check_refuses_a_folder_with_something_in_it(config, tmp_path: Path) -> None:
    RunDir(tmp_path / "absent").check(config, resume=False)
    RunDir(tmp_path).check(config, resume=False)  # empty
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        RunDir(tmp_path).check(config, resume=False)
    with pytest.raises(ConfigError, match="no config.yaml"):
        RunDir(tmp_path).check(config, resume=True)


def test_writing_saves_the_config_and_removes_a_failed_new_folder(config, tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(RuntimeError), run_dir.writing(config, lambda: False):
        saved = validate_config(read_yaml(run_dir.path / "config.yaml"), "config.yaml")
        assert saved.model_dump() == config.model_dump()
        raise RuntimeError("step 1")
    assert not run_dir.path.exists()


@pytest.mark.parametrize("existed, resumable", [(True, False), (False, True)])
def test_writing_keeps_what_it_did_not_create_or_can_resume(config, tmp_path: Path, existed, resumable) -> None:
    run_dir = RunDir(tmp_path / "run")
    if existed:
        run_dir.path.mkdir()
    with pytest.raises(RuntimeError), run_dir.writing(config, lambda: resumable):
        raise RuntimeError("step 1")
    assert (run_dir.path / "config.yaml").is_file()
    run_dir.check(config, resume=True)  # an unfinished run of the same config


def test_only_the_main_process_writes(config, tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run", main=False)
    with run_dir.writing(config, lambda: False):
        run_dir.write_info({"task": "classification"})
    assert not run_dir.path.exists()


def test_metrics_have_the_shared_header_then_the_report_then_provenance(config, tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    summary = {"train_seconds": 1.23456, "steps": 7, "epochs": 1, "best": 0.5}
    model = nn.Linear(3, 2)
    report = {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.25}}
    started = time.perf_counter()
    metrics = run_dir.write_metrics(config, "classification", model, summary, started, 40, "cpu", {"epoch": 1}, report)
    assert metrics == json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    keys = list(metrics)
    header = ["task", "strategy", "seed", "params", "train_seconds", "wall_seconds", "steps", "epochs"]
    assert keys[: len(header)] == header
    assert keys[keys.index("selected") + 1 : keys.index("selected") + 3] == ["val", "test"]
    assert keys[-1] == "command" and "versions" in keys
    assert (metrics["strategy"], metrics["params"], metrics["train_seconds"]) == ("joint", 8, 1.235)
    assert (metrics["train_examples"], metrics["device"], metrics["steps"]) == (40, "cpu", 7)
