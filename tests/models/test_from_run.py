"""The ``from_run`` encoder: an image encoder trained by one run, reused (frozen or fine-tuned) by the next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from polymodal.cli import main
from polymodal.errors import ConfigError
from polymodal.models import ENCODERS


def train(recipe: Path, out: Path, *overrides: str) -> Path:
    assert main(["train", str(recipe), *overrides, "--out", str(out)]) == 0
    return out


@pytest.fixture
def pretrained(toy_recipe) -> Path:
    """A finished run whose image encoder (lenet) learned the toy classes."""
    recipe = toy_recipe("image", {"name": "lenet", "out_dim": 16, "channels": [4, 8]})
    return train(recipe, recipe.parent / "first")


def _encoder_weights(run: Path, prefix: str) -> dict[str, torch.Tensor]:
    state = load_file(run / "checkpoints" / "best.safetensors")
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def test_frozen_encoder_from_a_run_keeps_its_weights_and_adapter_settings(pretrained, toy_recipe, accuracy):
    recipe = toy_recipe("image", {"name": "from_run", "run": str(pretrained), "freeze": True})
    run = train(recipe, recipe.parent / "second")
    assert accuracy(run) >= 0.75
    before = _encoder_weights(pretrained, "encoders.image.")
    after = _encoder_weights(run, "encoders.image.encoder.")
    assert before.keys() == after.keys()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    data = {r: yaml.safe_load((r / "config.yaml").read_text(encoding="utf-8"))["data"] for r in (pretrained, run)}
    assert data[run]["image"] == data[pretrained]["image"]


def test_fine_tuned_encoder_from_a_run_changes_and_learns(pretrained, toy_recipe, accuracy):
    spec = {"name": "from_run", "run": str(pretrained), "modality": "image", "lr_scale": 0.5}
    run = train(toy_recipe("image", spec), pretrained.parent / "second")
    assert accuracy(run) >= 0.75
    before = _encoder_weights(pretrained, "encoders.image.")
    after = _encoder_weights(run, "encoders.image.encoder.")
    assert any(not torch.equal(after[name], value) for name, value in before.items())


def test_adapter_settings_that_differ_from_the_run(pretrained, toy_recipe, capsys):
    recipe = toy_recipe("image", {"name": "from_run", "run": str(pretrained)}, {"image": {"size": 20}})
    capsys.readouterr()
    assert main(["train", str(recipe), "--out", str(recipe.parent / "second")]) == 2
    error = capsys.readouterr().err.strip()
    assert re.fullmatch(r"polymodal: error: data.image.size: 20 but the run .* has 16 \(leave it unset.*\)", error)
    assert not (recipe.parent / "second").exists()


def test_bad_runs_and_inputs(pretrained, tmp_path):
    def build(shape: tuple[int, ...], **spec: object) -> torch.nn.Module:
        return ENCODERS.build(ENCODERS.validate({"name": "from_run", **spec}, "e"), input_shape=shape, kind="image")

    with pytest.raises(ConfigError, match=r"is not a finished polymodal run \(no config.yaml, run.json"):
        build((3, 16, 16), run=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=re.escape("the run has no 'audio' encoder (it has: image)")):
        build((3, 16, 16), run=str(pretrained), modality="audio")
    with pytest.raises(
        ConfigError, match=re.escape("takes inputs of shape (3, 16, 16) but the data gives (1, 28, 28)")
    ):
        build((1, 28, 28), run=str(pretrained))
    encoder = build((3, 16, 16), run=str(pretrained), freeze=True).train()
    assert not encoder.encoder.training and not any(p.requires_grad for p in encoder.parameters())


def test_a_damaged_run_config_is_one_line_naming_the_setting(pretrained, toy_recipe, capsys):
    saved = yaml.safe_load((pretrained / "config.yaml").read_text(encoding="utf-8"))
    saved["data"]["image"]["size"] = "big"
    (pretrained / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    recipe = toy_recipe("image", {"name": "from_run", "run": str(pretrained)})
    capsys.readouterr()
    assert main(["train", str(recipe), "--out", str(recipe.parent / "second")]) == 2
    error = capsys.readouterr().err.strip()
    assert re.fullmatch(r"polymodal: error: model\.encoders\.image\.run: data\.image\.size: .*", error), error


def test_a_relative_run_path_is_stored_absolute_so_eval_works_elsewhere(pretrained, toy_recipe, monkeypatch):
    recipe = toy_recipe("image", {"name": "from_run", "run": pretrained.name, "freeze": True})
    monkeypatch.chdir(pretrained.parent)
    run = train(recipe, recipe.parent / "second")
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"]["encoders"]["image"]["run"] == str(pretrained.resolve())
    elsewhere = pretrained.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["eval", str(run)]) == 0
