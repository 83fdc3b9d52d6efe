"""Bundled recipes: each says what data it needs, runs without outside data, and scripts/check_recipes.py runs them."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from polymodal.cli import main
from polymodal.config import load_config
from polymodal.recipes import EMBEDDED, bundled_recipes, recipe_data, recipe_pretrain, recipe_summary

CHECKER = Path(__file__).resolve().parents[1] / "scripts" / "check_recipes.py"
SOURCE = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize("name", sorted(bundled_recipes()))
def test_each_recipe_says_what_data_it_needs_and_needs_no_shared_folder(name: str):
    path = bundled_recipes()[name]
    data = recipe_data(path)
    assert data.startswith((EMBEDDED, "your ")), data
    assert "shared/" not in path.read_text(encoding="utf-8")
    if data.startswith(EMBEDDED):  # runs out of the box: no path to data the user may not have
        config = load_config(name)
        assert config.data.root is None and config.data.train is None


def test_recipes_command_shows_the_data_column_without_importing_torch():
    code = "import sys; from polymodal.cli import main; main(['recipes']); assert 'torch' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": SOURCE}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    recipes = bundled_recipes()
    lines = out.splitlines()
    assert len(lines) == len(recipes)
    for line, name in zip(lines, sorted(recipes), strict=True):
        path = recipes[name]
        assert line.startswith(f"{name} ") and f"  data: {recipe_data(path)}  " in line
        assert line.endswith(recipe_summary(path))


def test_recipes_command_marks_mosi_as_the_users_data(capsys: pytest.CaptureFixture[str]):
    assert main(["recipes"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "data: your MOSI" in lines["selfmi-mosi"] and "data: embedded  " in lines["avdigits-joint"]


def _check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SOURCE, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, str(CHECKER), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)


def test_checker_runs_cheap_recipes_and_skips_those_needing_the_users_data(tmp_path: Path):
    done = _check("--only", "avdigits-unimodal", "manifest-joint", "selfmi-mosi", "--", "data.max_eval_samples=64")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[3]: line for line in done.stdout.splitlines()[:-1]}
    assert lines["avdigits-unimodal"].startswith("ok") and "on embedded" in lines["avdigits-unimodal"]
    assert lines["manifest-joint"].startswith("ok") and "generated CSV manifests" in lines["manifest-joint"]
    assert lines["selfmi-mosi"].startswith("skip") and "--data-root selfmi-mosi=DIR" in lines["selfmi-mosi"]
    assert done.stdout.splitlines()[-1] == "3 recipes: 0 failed"


def test_checker_fails_when_a_run_fails(tmp_path: Path):
    done = _check("--only", "selfmi-mosi", "--data-root", f"mosi={tmp_path / 'missing'}")
    assert done.returncode == 1
    line = done.stdout.splitlines()[0]
    assert line.startswith("FAIL") and "exit 2: train selfmi-mosi: polymodal: error:" in line


@pytest.mark.e2e
def test_every_recipe_runs_from_a_fresh_directory():
    done = _check("--jobs", "2")  # two one-thread runs at a time on CI's two cores
    assert done.returncode == 0, done.stdout + done.stderr


def test_checker_runs_each_stage_of_a_staged_recipe_for_one_epoch():
    spec = importlib.util.spec_from_file_location("check_recipes", CHECKER)
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    recipe = yaml.safe_load(bundled_recipes()["momo-digits"].read_text(encoding="utf-8"))
    overrides = checker.quick_stages(recipe)
    config = load_config("momo-digits", [*checker.QUICK, *overrides])  # the stages fit the quick run
    assert [s["epochs"] for s in config.strategy["stages"]] == [1] * len(recipe["strategy"]["stages"])
    assert config.trainer.epochs == len(recipe["strategy"]["stages"])
    assert checker.quick_stages(yaml.safe_load(bundled_recipes()["avdigits-joint"].read_text(encoding="utf-8"))) == []


def test_checker_skips_recipes_that_need_the_users_models():
    done = _check("--only", "manifest-hf")
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.splitlines()[0]
    assert line.startswith("skip") and "your Hugging Face model directories" in line


def test_pretrain_lines_are_parsed_as_polymodal_arguments(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "# x\n# Pretrain: polymodal train avdigits-unimodal model.encoders='{image: {name: lenet}}' --out runs/a\n"
        "# Pretrain: train avdigits-unimodal --out runs/b\ndata: {name: manifest}\n",
        encoding="utf-8",
    )
    assert recipe_pretrain(recipe) == [
        ["train", "avdigits-unimodal", "model.encoders={image: {name: lenet}}", "--out", "runs/a"],
        ["train", "avdigits-unimodal", "--out", "runs/b"],
    ]


def test_checker_trains_a_transfer_recipes_pretraining_runs_first():
    done = _check("--only", "manifest-transfer", "--", "data.max_eval_samples=64")
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.splitlines()[0]
    assert line.startswith("ok") and "after 2 pretraining runs" in line
