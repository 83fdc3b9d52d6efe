"""The training loop on a toy task: learning, sample order, LR schedule, NaN guard, log, and what it imports."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from toys import ToyDataset

from polymodal.errors import ConfigError, TrainingError
from polymodal.training.config import OptimizerConfig, SchedulerConfig, TrainerConfig
from polymodal.training.log import read_log, wide_rows
from polymodal.training.setup import EpochSampler, build_optimizer, build_scheduler


def test_trainer_reduces_the_loss(make_trainer) -> None:
    trainer = make_trainer(epochs=6, optimizer={"name": "adamw", "lr": 0.05}, scheduler={"name": "constant"})
    data = ToyDataset(32)
    before = trainer.evaluate(trainer.strategy)["loss"]
    summary = trainer.fit(data)
    after = trainer.evaluate(trainer.strategy)["loss"]
    assert summary["steps"] == 6 * 8 and summary["epochs"] == 6
    assert after < 0.7 * before
    rows = wide_rows(trainer.run_dir / "log.csv")
    assert len(rows) == 48
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[0]["train_double"] == pytest.approx(2 * rows[0]["train_loss"], rel=1e-5)
    assert {"val_accuracy", "val_loss"} <= set(rows[7])  # validation at the end of each epoch


def test_epoch_sampler_depends_only_on_seed_and_epoch() -> None:
    first, second = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    torch.manual_seed(99)  # the global RNG plays no part
    first.set_position(epoch=2, skip=0)
    second.set_position(epoch=2, skip=0)
    order = list(first)
    assert sorted(order) == list(range(10))
    assert list(second) == order and list(first) == order
    second.set_position(epoch=3, skip=0)
    assert list(second) != order
    other_seed = EpochSampler(10, seed=4)
    other_seed.set_position(epoch=2, skip=0)
    assert list(other_seed) != order
    first.set_position(epoch=2, skip=4)
    assert list(first) == order[4:] and len(first) == 6


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_optimizer_updates_equal_pytorchs_default_loop_bit_for_bit(name: str) -> None:
    """build_optimizer's multi-tensor (foreach) updates give the weights of PyTorch's per-parameter loop exactly."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 3, 3, 3), (8,), (17, 5), (1,)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    config = OptimizerConfig(name=name, lr=0.05, weight_decay=0.01, momentum=0.9)
    optimizer = build_optimizer([{"params": ours[:2]}, {"params": ours[2:], "lr_scale": 0.3}], config)
    groups = [{"params": theirs[:2]}, {"params": theirs[2:], "lr": config.lr * 0.3}]
    if name == "sgd":
        reference = torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=0.01, foreach=False)
    else:
        reference = torch.optim.AdamW(groups, lr=0.05, weight_decay=0.01, foreach=False)
    assert all(g["foreach"] for g in optimizer.param_groups)
    for _ in range(25):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        optimizer.step()
        reference.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(ours, start, strict=True))  # they did train


def lr_after(steps: int, scheduler: SchedulerConfig, total: int) -> float:
    optimizer = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(1))]}], OptimizerConfig(lr=1.0))
    schedule = build_scheduler(optimizer, scheduler, total)
    for _ in range(steps):
        optimizer.step()
        schedule.step()
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (0, 0.5),  # warmup: (step + 1) / warmup, so the first step already trains
        (1, 1.0),
        (2, 1.0),  # cosine starts at warmup_steps
        (4, 0.5 * (1 + math.cos(math.pi / 4))),  # progress 2/8
        (6, 0.5),  # progress 4/8
        (10, 0.0),
        (12, 0.0),  # clamped past the end
    ],
)
def test_warmup_cosine_schedule(steps: int, expected: float) -> None:
    lr = lr_after(steps, SchedulerConfig(name="cosine", warmup_steps=2), total=10)
    assert lr == pytest.approx(expected, abs=1e-12)


def test_warmup_fraction_scales_with_the_run_and_a_warmup_past_the_end_is_flagged(capsys) -> None:
    # warmup_fraction 0.2 of 10 steps = 2 steps: the same schedule as warmup_steps=2.
    fraction = SchedulerConfig(name="cosine", warmup_fraction=0.2)
    assert lr_after(0, fraction, total=10) == pytest.approx(0.5) and lr_after(2, fraction, total=10) == 1.0
    assert lr_after(9, fraction, total=100) == pytest.approx(0.5)  # 20 warm-up steps in a 100-step run
    assert capsys.readouterr().err == ""
    lr_after(0, SchedulerConfig(name="cosine", warmup_steps=50), total=8)
    assert "warmup_steps=50 but the run has only 8 steps" in capsys.readouterr().err


def test_constant_schedule_after_warmup() -> None:
    scheduler = SchedulerConfig(name="constant", warmup_steps=4)
    assert [lr_after(s, scheduler, total=10) for s in (0, 3, 9)] == pytest.approx([0.25, 1.0, 1.0])


def test_nan_loss_stops_with_last_good_checkpoint(make_trainer) -> None:
    data = ToyDataset(16)  # 4 steps per epoch
    trainer = make_trainer(nan_at=7, epochs=3, checkpoint_every=5)
    with pytest.raises(TrainingError) as err:
        trainer.fit(data)
    folder = trainer.run_dir / "checkpoints"
    message = str(err.value)
    assert "non-finite loss" in message and "at step 7 " in message
    assert f"last good checkpoint: {folder / 'ckpt-00000005.safetensors'}" in message
    # Step 4 (end of epoch 1) and step 5 were saved; nothing after the NaN.
    assert [p.name for p in trainer.checkpoints.step_checkpoints()] == ["ckpt-00000004.json", "ckpt-00000005.json"]
    tensors, state = trainer.checkpoints.load("ckpt-00000005")
    assert state["step"] == 5 and state["strategy"] == {"calls": 5}
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))

    resumed = make_trainer(epochs=3, checkpoint_every=5)
    summary = resumed.fit(data, resume=True)
    assert summary["steps"] == 12
    assert all(math.isfinite(float(r["value"])) for r in read_log(resumed.run_dir / "log.csv"))


def test_nan_before_any_checkpoint_says_none(make_trainer) -> None:
    with pytest.raises(TrainingError, match=r"at step 1 \(epoch 1\); stopped, last good checkpoint: none"):
        make_trainer(nan_at=1).fit(ToyDataset(8))


def test_log_has_rows_for_each_logged_step(make_trainer) -> None:
    trainer = make_trainer(epochs=1, log_every=2)
    trainer.fit(ToyDataset(16))
    rows = read_log(trainer.run_dir / "log.csv")
    assert [(r["step"], r["name"]) for r in rows] == [
        ("2", "train_loss"),
        ("2", "train_double"),
        ("2", "lr"),
        ("4", "train_loss"),
        ("4", "train_double"),
        ("4", "lr"),
        ("4", "val_accuracy"),
        ("4", "val_loss"),
    ]


def test_resume_matches_uninterrupted_run(make_trainer, tmp_path: Path) -> None:
    # log_every does not divide checkpoint_every, so a resumed run needs the saved running sums.
    settings = {"epochs": 2, "checkpoint_every": 3, "log_every": 4, "keep_checkpoints": 10}
    data = ToyDataset(20)  # 5 steps per epoch
    whole = make_trainer(**settings)
    whole.fit(data)
    whole_log = (whole.run_dir / "log.csv").read_text()
    whole_weights = {k: v.clone() for k, v in whole.model.state_dict().items()}

    for stop in ("ckpt-00000003", "ckpt-00000005", "ckpt-00000006"):
        folder = whole.run_dir / "checkpoints"
        for path in folder.iterdir():
            if path.stem > stop and path.stem.startswith("ckpt-"):
                path.unlink()  # as if killed right after saving ``stop``
        resumed = make_trainer(seed=1, **settings)  # another init: the checkpoint must overwrite it
        resumed.config = whole.config
        resumed.fit(data, resume=True)
        assert (resumed.run_dir / "log.csv").read_text() == whole_log, stop
        for key, value in whole_weights.items():
            torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_train_package_imports_no_modalities_or_models() -> None:
    code = (
        "import sys, polymodal.training, polymodal.training.trainer, polymodal.training.checkpoint\n"
        "import polymodal.training.setup\n"
        "import polymodal.training.log\n"
        "print(sorted(m for m in sys.modules if m.startswith(('polymodal.modalities', 'polymodal.models'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_resume_after_kill_between_validation_and_epoch_checkpoint(make_trainer) -> None:
    # The mid-epoch checkpoint at the epoch's last step shares its step with the validation rows written after it;
    # resuming from it must not write those rows twice.
    settings = {"epochs": 2, "checkpoint_every": 5, "log_every": 2}
    data = ToyDataset(20)  # 5 steps per epoch
    whole = make_trainer(**settings)
    whole.fit(data)
    whole_log = (whole.run_dir / "log.csv").read_text()
    for path in (whole.run_dir / "checkpoints").iterdir():
        path.unlink()
    (whole.run_dir / "log.csv").unlink()

    killed = make_trainer(**settings)
    save, calls = killed.save, []

    def save_then_die() -> Path:
        calls.append(killed.step)
        if len(calls) == 2:  # the end-of-epoch save at step 5, after the validation rows
            raise KeyboardInterrupt
        return save()

    killed.save = save_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.fit(data)
    assert calls == [5, 5]
    resumed = make_trainer(**settings)
    resumed.fit(data, resume=True)
    assert (resumed.run_dir / "log.csv").read_text() == whole_log


def test_non_finite_gradient_with_finite_loss_stops(make_trainer) -> None:
    trainer = make_trainer(epochs=1)
    step = trainer.strategy.step

    def infinite_gradient(batch):
        out = step(batch)
        weight = next(trainer.model.parameters())
        # sqrt at 0 has a finite value and an infinite derivative.
        return {**out, "loss": out["loss"] + torch.sqrt(weight.sum() * 0.0)}

    trainer.strategy.step = infinite_gradient
    with pytest.raises(TrainingError, match=r"non-finite gradient norm \(.*\) at step 1 \(epoch 1\)"):
        trainer.fit(ToyDataset(8))


def test_substeps_get_one_optimizer_update_each(make_trainer) -> None:
    trainer = make_trainer(epochs=1, log_every=1)
    updates = []
    step = trainer.strategy.step
    trainer.strategy.substeps = lambda batch: [batch, batch, batch]

    def counting_step(part):
        updates.append(trainer.scheduler.last_epoch)
        return step(part)

    trainer.strategy.step = counting_step
    summary = trainer.fit(ToyDataset(8))  # 2 batches
    assert summary["steps"] == 2
    # three updates per batch, and the scheduler advances once per batch (after its three updates)
    assert updates == [0, 0, 0, 1, 1, 1]
    assert trainer.optimizer.state_dict()["state"][0]["step"] == 6


def test_progress_prints_a_stage_line_and_one_line_per_epoch(make_trainer, capsys) -> None:
    trainer = make_trainer(progress=True, epochs=2)
    trainer.fit(ToyDataset(16))  # 4 steps per epoch: over long before a plain progress line is due
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "training: 2 epochs of 4 steps (16 samples, batches of 4) on cpu"
    rows = wide_rows(trainer.run_dir / "log.csv")
    for epoch, line in enumerate(lines[1:], start=1):
        loss = sum(r["train_loss"] for r in rows if r["epoch"] == epoch and "train_loss" in r) / 4  # log_every=1
        val = next(r for r in rows if r["epoch"] == epoch and "val_accuracy" in r)
        assert line.startswith(f"epoch {epoch}/2  train loss {loss:.4g}  val accuracy {val['val_accuracy']:.4g}")
        assert f"  loss {val['val_loss']:.4g}  " in line and line.endswith(" s")
    assert len(lines) == 3 and "(best)" in lines[1]  # the first epoch is always the best so far


def test_plain_progress_lines_when_due(make_trainer, capsys, monkeypatch) -> None:
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 0.0)  # a plain line after every batch
    trainer = make_trainer(progress=True, epochs=1)
    trainer.fit(ToyDataset(8))
    lines = capsys.readouterr().err.splitlines()
    losses = [r["train_loss"] for r in wide_rows(trainer.run_dir / "log.csv") if "train_loss" in r]  # log_every=1
    for step, (line, loss) in enumerate(zip(lines[1:3], losses, strict=True), start=1):
        parts = line.split("  ")
        assert parts[:2] == ["epoch 1/1", f"{step}/2 batches ({50 * step}%)"]
        assert parts[-1] == f"loss {loss:.4f}"  # the running loss
    assert len(lines) == 4 and lines[-1].startswith("epoch 1/1  train loss ")


def test_quiet_run_prints_nothing(make_trainer, capsys, monkeypatch) -> None:
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 0.0)
    make_trainer(progress=False).fit(ToyDataset(8))
    assert capsys.readouterr().err == ""


def test_checkpoints_by_wall_time_and_resume_from_one(make_trainer) -> None:
    # checkpoint_minutes this small: due at every log row (every 2 steps), besides the epoch ends (steps 5 and 10).
    settings = {"epochs": 2, "checkpoint_minutes": 1e-9, "log_every": 2, "keep_checkpoints": 10}
    data = ToyDataset(20)  # 5 steps per epoch
    whole = make_trainer(**settings)
    whole.fit(data)
    folder = whole.run_dir / "checkpoints"
    assert [p.stem for p in whole.checkpoints.step_checkpoints()] == [f"ckpt-{s:08d}" for s in (2, 4, 5, 6, 8, 10)]
    whole_log = (whole.run_dir / "log.csv").read_text()
    whole_weights = {k: v.clone() for k, v in whole.model.state_dict().items()}
    for path in folder.iterdir():
        if path.stem > "ckpt-00000004" and path.stem.startswith("ckpt-"):
            path.unlink()  # killed in the first epoch, after the time-based checkpoint of step 4
    resumed = make_trainer(seed=1, **settings)  # another init: the checkpoint must overwrite it
    resumed.config = whole.config
    resumed.fit(data, resume=True)
    assert (resumed.run_dir / "log.csv").read_text() == whole_log
    for key, value in whole_weights.items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_no_wall_time_checkpoints_when_off(make_trainer) -> None:
    trainer = make_trainer(epochs=2, checkpoint_minutes=0, log_every=1, keep_checkpoints=10)
    trainer.fit(ToyDataset(20))
    assert [p.stem for p in trainer.checkpoints.step_checkpoints()] == ["ckpt-00000005", "ckpt-00000010"]


def test_load_best_reports_the_selected_epoch_and_step(make_trainer) -> None:
    trainer = make_trainer(epochs=4, selection_metric="loss", optimizer={"name": "adamw", "lr": 0.05})
    trainer.fit(ToyDataset(16))  # 4 steps per epoch
    selected = trainer.load_best()
    rows = wide_rows(trainer.run_dir / "log.csv")
    best = min((r for r in rows if "val_loss" in r), key=lambda r: r["val_loss"])
    assert selected == trainer.selected == {"epoch": best["epoch"], "step": best["step"]}
    assert selected["step"] == 4 * selected["epoch"]
    assert trainer.selected_metrics == pytest.approx({k[4:]: v for k, v in best.items() if k.startswith("val_")}, 1e-5)
    trainer.model.eval()
    assert trainer.selected_metrics == trainer.evaluate(trainer.strategy)  # they are those weights' metrics


def test_a_selection_metric_validation_does_not_report_is_one_error(make_trainer) -> None:
    trainer = make_trainer(epochs=2, selection_metric="r1")  # the toy validation reports accuracy alone
    with pytest.raises(ConfigError, match=r"trainer.selection_metric: 'r1' is not among the validation metrics"):
        trainer.fit(ToyDataset(8))


def test_tensorboard_events_hold_the_logged_values(make_trainer) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(epochs=2, log_to=["csv", "tensorboard"])
    trainer.fit(ToyDataset(8))
    events = EventAccumulator(str(trainer.run_dir / "tensorboard"))
    events.Reload()
    rows = wide_rows(trainer.run_dir / "log.csv")
    assert {"train/loss", "train/double", "lr", "val/accuracy", "val/loss"} <= set(events.Tags()["scalars"])
    logged = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
    read = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in read] == [s for s, _ in logged]
    assert [v for _, v in read] == pytest.approx([v for _, v in logged], rel=1e-5)


def test_tensorboard_without_the_package_is_a_config_error(make_trainer, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    trainer = make_trainer(log_to=["csv", "tensorboard"])
    with pytest.raises(ConfigError, match=r"trainer.log_to: tensorboard needs the tensorboard package \(pip install"):
        trainer.fit(ToyDataset(8))


def test_log_to_always_keeps_csv() -> None:
    with pytest.raises(ValidationError, match="csv is always written"):
        TrainerConfig(log_to=["tensorboard"])
