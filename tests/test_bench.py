"""``polymodal bench overhead`` on a tiny model: both loops run the asked steps and the row is consistent."""

from __future__ import annotations

import json

import pytest

from polymodal.cli import main
from polymodal.errors import ConfigError
from polymodal.runs.bench import overhead

TINY = [
    "model.encoders.image={name: lenet, out_dim: 8, channels: [4, 4]}",
    "model.encoders.audio={name: spec_cnn, out_dim: 8, channels: [4, 4, 4]}",
    "model.encoders.text={name: transformer, dim: 8, depth: 1, heads: 2}",
    "model.head={name: mlp, hidden: 16}",
    "data.batch_size=4",
    "trainer.device=cpu",
]


def test_overhead_row(capsys) -> None:
    assert main(["bench", "overhead", "--steps", "3", "--repeats", "1", *TINY]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["model"] == "demo" and row["steps"] == 3 and row["batch_size"] == 4
    (trainer,), (plain,) = row["trainer_runs_s"], row["plain_runs_s"]
    assert row["trainer_step_s"] == pytest.approx(trainer / 3, rel=1e-3)
    assert row["plain_step_s"] == pytest.approx(plain / 3, rel=1e-3)
    assert row["ratio"] == pytest.approx(trainer / plain, rel=1e-3)
    assert 0 < row["data_wait_share"] < 1 and 0 < row["plain_data_wait_share"] < 1


def test_unknown_model_and_too_many_steps_are_one_line(capsys) -> None:
    assert main(["bench", "overhead", "--model", "nope"]) == 2
    assert "--model: unknown model 'nope' (known: demo, avmnist)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="fewer than needed"):
        overhead("demo", 10**6, 1, TINY)
