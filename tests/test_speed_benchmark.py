"""benchmarks/speed.py: the plain loop is the recipes' model and job, and the report states the acceptance ratios."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.config import load_config
from polymodal.data.splits import subset_indices
from polymodal.models import build_model
from polymodal.strategies.alternating import entropy_weights

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speed)

SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}


def shapes(module: torch.nn.Module) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in module.state_dict().values()]


@pytest.mark.parametrize("method", sorted(speed.METHODS))
def test_plain_model_is_the_recipe_model(method: str):
    settings = speed.recipe_settings(method)
    config = load_config(speed.METHODS[method])
    ours = build_model(config.model, SHAPES, 10)
    plain = speed.plain_model(json.loads(json.dumps(settings)))  # as the plain process receives it
    for m in ("image", "audio"):
        assert shapes(plain[m]) == shapes(ours.encoders[m])
    assert shapes(plain["head"]) == shapes(ours.head)
    assert settings["batch_size"] == config.data.batch_size and settings["grad_clip"] == config.trainer.grad_clip


def test_mla_fusion_is_the_strategy_rule():
    logits = [torch.randn(5, 10), torch.randn(5, 10) * 3]
    stacked = torch.stack(logits, dim=1)
    weights = entropy_weights(stacked, torch.ones(5, 2, dtype=torch.bool)).unsqueeze(-1)
    torch.testing.assert_close(speed.fuse(logits, "mla"), (weights * stacked).sum(1))
    torch.testing.assert_close(speed.fuse(logits, "late"), stacked.mean(1))


def test_plain_run_reports_accuracy_and_epoch_clocks(tmp_path: Path):
    data = speed.smoke_data(tmp_path / "avmnist")
    indices = tmp_path / "indices.npy"
    np.save(indices, np.array(subset_indices(speed.SMOKE_SPLITS["train"], 100, 0)))
    args = argparse.Namespace(
        data=str(data),
        method="mla",
        indices=str(indices),
        epochs=2,
        seed=0,
        settings=json.dumps(speed.recipe_settings("mla")),
    )
    result = speed.plain_run(args)
    assert result["train_examples"] == 100 and result["threads"] == 1
    assert 0.0 <= result["test_accuracy"] <= 1.0 and set(result["test_alone"]) == {"image", "audio"}
    assert {k: len(v) for k, v in result["seconds"].items()} == {
        k: 2 for k in ("train", "validation", "test", "checkpoint")
    }


def _pair(method: str, plain_wall: float, ours_wall: float) -> dict:
    timing = {k: 1.0 for k in speed.PHASES}
    return {
        "method": method,
        "samples": 4000,
        "epochs": 2,
        "plain": {"wall": plain_wall, "test_accuracy": 0.9, "seconds": {"train": [1.0, 1.0], "validation": [0.5, 0.5]}},
        "polymodal": {"wall": ours_wall, "test_accuracy": 0.91, "train_seconds": 2.0, "timing": timing},
        "commands": {"plain": ["plain"], "polymodal": ["polymodal"]},
    }


def test_report_states_the_acceptance_ratios():
    pairs = [_pair("late", 10.0, 11.0), _pair("late", 10.0, 13.0), _pair("late", 10.0, 11.5)]
    whole = speed.summarise_whole(pairs)
    assert len(whole) == 1 and whole[0]["ratio"] == 1.15 and whole[0]["pair_ratios"] == [1.1, 1.3, 1.15]
    assert whole[0]["plain_epoch"] == 1.5 and whole[0]["polymodal_epoch"] == 1.5  # (2 + 1) / 2 epochs
    demo = [{"wall": 50.0, "report_share": 0.2, "timing": {}, "import": 1.0, "startup": 2.0, "load": [[0], [0]]}]
    checks = {c["check"]: (c["value"], c["met"]) for c in speed.acceptance(whole, demo)}
    assert checks == {
        "whole run, late 4000 x 2": (1.15, True),
        "epoch, late 4000 x 2": (1.0, True),
        "demo wall seconds": (50.0, False),
        "demo final report / training": (0.2, True),
    }
    meta = {"smoke": False, "command": "c", "date": "d", "hardware": "h", "versions": {}, "git_commit": None}
    meta.update(seed=0, repeats=3, load_before=[0.1], load_after=[0.2])
    result = {
        "meta": meta,
        "acceptance": speed.acceptance(whole, demo),
        "whole_runs": whole,
        "demo": [],
        "pairs": pairs,
    }
    text = speed.markdown(result)
    assert (
        "| whole run, late 4000 x 2 | 1.15 | 1.2 | yes |" in text and "| demo wall seconds | 50.0 | 45.0 | NO |" in text
    )
