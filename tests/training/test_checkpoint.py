"""Checkpoints: atomic writes, every saved piece restored, fallback over corrupt files, pruning."""

from __future__ import annotations

import errno
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from toys import ToyDataset

import polymodal.fileio as fileio
from polymodal.training import checkpoint
from polymodal.training.checkpoint import CheckpointManager, flatten_optimizer, unflatten_optimizer


def tensors(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 3), value), "n": torch.tensor(int(value))}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("target", ["replace", "save_file"])
def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save("ckpt-00000001", tensors(1.0), {"step": 1})

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    if target == "replace":
        monkeypatch.setattr(fileio.os, "replace", fail)
    else:
        monkeypatch.setattr(checkpoint, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        manager.save("ckpt-00000001", tensors(2.0), {"step": 2})
    monkeypatch.undo()

    loaded, state = manager.load("ckpt-00000001")
    assert state["step"] == 1
    torch.testing.assert_close(loaded["w"], torch.full((2, 3), 1.0), rtol=0, atol=0)
    assert leftovers(tmp_path) == []


def test_tensor_file_without_json_is_not_a_checkpoint(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save("ckpt-00000001", tensors(1.0), {"step": 1})
    checkpoint.save_tensors(tmp_path / "ckpt-00000002.safetensors", tensors(2.0))  # killed before the JSON
    (tmp_path / ".ckpt-00000003.safetensors.x.tmp").write_bytes(b"partial")
    assert [p.name for p in manager.step_checkpoints()] == ["ckpt-00000001.json"]
    manager.remove_partial()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000001.json", "ckpt-00000001.safetensors"]


def test_shared_tensors_are_saved(tmp_path: Path) -> None:
    weight = torch.randn(3, 2)
    manager = CheckpointManager(tmp_path)
    manager.save("best", {"a": weight, "b": weight, "view": weight[0]}, {})
    loaded, _ = manager.load("best")
    for key in ("a", "b"):
        torch.testing.assert_close(loaded[key], weight, rtol=0, atol=0)
    torch.testing.assert_close(loaded["view"], weight[0], rtol=0, atol=0)


def corrupt_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # a tensor byte: the header still parses, only the checksum can tell
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_flip])
def test_load_latest_falls_back_over_corrupt_checkpoint(tmp_path: Path, corrupt) -> None:
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save("ckpt-00000001", tensors(1.0), {"step": 1})
    manager.save("ckpt-00000002", tensors(2.0), {"step": 2})
    corrupt(tmp_path / "ckpt-00000002.safetensors")
    with pytest.warns(UserWarning, match=r"ckpt-00000002\.safetensors: checksum mismatch"):
        loaded, state, path = manager.load_latest()
    assert state["step"] == 1 and path.name == "ckpt-00000001.json"
    torch.testing.assert_close(loaded["w"], torch.full((2, 3), 1.0), rtol=0, atol=0)


def test_load_latest_none_when_nothing_verifies(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    assert manager.load_latest() is None
    manager.save("ckpt-00000001", tensors(1.0), {"step": 1})
    (tmp_path / "ckpt-00000001.safetensors").unlink()
    with pytest.warns(UserWarning, match="ckpt-00000001.safetensors: missing"):
        assert manager.load_latest() is None


def test_pruning_keeps_last_step_checkpoints_and_best(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    manager.save("best", tensors(0.0), {"step": 1})
    for step in range(1, 6):
        manager.save(f"ckpt-{step:08d}", tensors(float(step)), {"step": step})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "best.json",
        "best.safetensors",
        "ckpt-00000004.json",
        "ckpt-00000004.safetensors",
        "ckpt-00000005.json",
        "ckpt-00000005.safetensors",
    ]
    assert manager.load("best")[1]["step"] == 1


def test_optimizer_state_round_trip() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensor_part, meta = flatten_optimizer(optimizer.state_dict())
    import json

    restored = unflatten_optimizer(tensor_part, json.loads(json.dumps(meta)))
    original = optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    for pid, entry in original["state"].items():
        assert set(restored["state"][pid]) == set(entry)
        for name, value in entry.items():
            torch.testing.assert_close(restored["state"][pid][name], value, rtol=0, atol=0)


def rng_snapshot() -> tuple[torch.Tensor, object, list]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return torch.get_rng_state(), random.getstate(), [name, keys.tolist(), pos, has_gauss, cached]


def test_every_saved_piece_is_restored(make_trainer) -> None:
    data = ToyDataset(20)
    first = make_trainer(epochs=2, checkpoint_every=3, scheduler={"name": "cosine", "warmup_steps": 2})
    first.fit(data)
    rng_after = rng_snapshot()  # the last checkpoint is written as fit returns

    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    second = make_trainer(seed=5, epochs=2, checkpoint_every=3, scheduler={"name": "cosine", "warmup_steps": 2})
    second.config = first.config  # same seed and schedule; the different init must be overwritten
    second.fit(data, resume=True)  # restores the last checkpoint; nothing is left to train

    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value, rtol=0, atol=0)
    saved, loaded = first.optimizer.state_dict(), second.optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for pid, entry in saved["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(loaded["state"][pid][name], entry[name], rtol=0, atol=0)
    assert second.scheduler.state_dict() == first.scheduler.state_dict()
    assert second.scheduler.get_last_lr() == first.scheduler.get_last_lr()
    assert second.strategy.state_dict() == first.strategy.state_dict() == {"calls": 10}
    for name in ("epoch", "batch_in_epoch", "step", "best", "train_seconds", "running"):
        assert getattr(second, name) == getattr(first, name), name
    assert second.log is not None and second.log.rows == first.log.rows

    torch_state, python_state, numpy_state = rng_snapshot()
    torch.testing.assert_close(torch_state, rng_after[0], rtol=0, atol=0)
    assert python_state == rng_after[1]
    assert numpy_state == rng_after[2]


def test_full_disk_during_training_keeps_previous_checkpoint(make_trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"epochs": 2, "checkpoint_every": 1, "keep_checkpoints": 2}
    data = ToyDataset(16)  # 4 steps per epoch
    whole = make_trainer(**settings)
    whole.fit(data)
    whole_weights = {k: v.clone() for k, v in whole.model.state_dict().items()}
    shutil.rmtree(whole.run_dir)

    real_save_file = checkpoint.save_file
    saves = []

    def fill_disk(tensors: dict[str, torch.Tensor], filename: str) -> None:
        saves.append(filename)
        if len(saves) < 4:
            return real_save_file(tensors, filename)
        Path(filename).write_bytes(b"\0" * 100)  # part of the file got out before the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(checkpoint, "save_file", fill_disk)
    full = make_trainer(**settings)
    with pytest.raises(OSError) as failure:
        full.fit(data)
    assert failure.value.errno == errno.ENOSPC
    monkeypatch.undo()
    folder = full.run_dir / "checkpoints"
    assert leftovers(folder) == []
    assert [p.stem for p in full.checkpoints.step_checkpoints()] == ["ckpt-00000002", "ckpt-00000003"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the newest checkpoint verifies: no fallback needed
        _, state, _ = full.checkpoints.load_latest()
    assert state["step"] == 3

    resumed = make_trainer(**settings)  # space freed: the run continues to the uninterrupted result
    resumed.fit(data, resume=True)
    for key, value in whole_weights.items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
