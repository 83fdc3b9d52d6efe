"""``trainer.validate_every``: validation (and selection) every n-th epoch and the last; resume keeps to it."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch
from toys import ToyDataset

from polymodal.training.config import TrainerConfig
from polymodal.training.log import wide_rows


def counting(trainer):
    """Wraps the trainer's validation to record the (1-based) epochs it runs at."""
    epochs: list[int] = []
    evaluate = trainer.evaluate

    def wrapped(strategy):
        epochs.append(trainer.epoch + 1)
        return evaluate(strategy)

    trainer.evaluate = wrapped
    return epochs


def test_validates_every_nth_epoch_and_the_last_and_selects_among_them(make_trainer) -> None:
    trainer = make_trainer(
        epochs=5,
        validate_every=2,
        keep_checkpoints=10,
        selection_metric="loss",
        optimizer={"name": "adamw", "lr": 0.05},
    )
    validated = counting(trainer)
    trainer.fit(ToyDataset(16))  # 4 steps per epoch
    assert validated == [2, 4, 5]
    rows = wide_rows(trainer.run_dir / "log.csv")
    assert sorted({r["epoch"] for r in rows if "val_loss" in r}) == [2, 4, 5]
    best = min((r for r in rows if "val_loss" in r), key=lambda r: r["val_loss"])
    assert trainer.load_best() == {"epoch": best["epoch"], "step": best["step"]}
    # Every epoch still ends with a checkpoint, validated or not.
    assert [p.stem for p in trainer.checkpoints.step_checkpoints()] == [f"ckpt-{4 * e:08d}" for e in range(1, 6)]


def test_validates_every_epoch_by_default(make_trainer) -> None:
    trainer = make_trainer(epochs=3)
    validated = counting(trainer)
    trainer.fit(ToyDataset(16))
    assert validated == [1, 2, 3]


def test_validate_every_must_be_positive() -> None:
    with pytest.raises(pydantic.ValidationError, match="validate_every"):
        TrainerConfig(validate_every=0)


def test_resume_keeps_the_validation_epochs(make_trainer, tmp_path: Path) -> None:
    settings = {"epochs": 4, "validate_every": 3, "keep_checkpoints": 10, "log_every": 2}
    data = ToyDataset(20)  # 5 steps per epoch
    whole = make_trainer(**settings)
    whole.fit(data)
    whole_log = (whole.run_dir / "log.csv").read_text()
    whole_weights = {k: v.clone() for k, v in whole.model.state_dict().items()}
    whole_best = whole.load_best()
    # Killed after epoch 1 (nothing validated yet), then after epoch 3 (validated).
    for stop in ("ckpt-00000005", "ckpt-00000015"):
        for path in (whole.run_dir / "checkpoints").iterdir():
            if path.stem > stop and path.stem.startswith("ckpt-"):
                path.unlink()
        resumed = make_trainer(seed=1, **settings)  # another init: the checkpoint must overwrite it
        resumed.config = whole.config
        validated = counting(resumed)
        resumed.fit(data, resume=True)
        assert validated == ([3, 4] if stop == "ckpt-00000005" else [4]), stop
        assert (resumed.run_dir / "log.csv").read_text() == whole_log, stop
        for key, value in whole_weights.items():
            torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
        assert resumed.load_best() == whole_best, stop


def test_what_is_trained_does_not_depend_on_validation(make_trainer) -> None:
    weights = []
    for every in (1, 3):
        trainer = make_trainer(epochs=3, validate_every=every)
        evaluate = trainer.evaluate
        # A validation that draws from torch's random state, as iterating a DataLoader does.
        trainer.evaluate = lambda strategy, evaluate=evaluate: (torch.rand(1), evaluate(strategy))[1]
        trainer.fit(ToyDataset(16))
        weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
