"""Run files are written atomically with the permissions any program's files get (0666 minus the umask)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from polymodal.fileio import atomic_path, atomic_write_text
from polymodal.training.checkpoint import CheckpointManager


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_files_and_checkpoints_follow_the_umask(tmp_path, umask):
    atomic_write_text(tmp_path / "metrics.json", "{}")
    CheckpointManager(tmp_path / "checkpoints").save("ckpt-00000001", {"w": torch.zeros(2)}, {"step": 1})
    written = [tmp_path / "metrics.json", *sorted((tmp_path / "checkpoints").iterdir())]
    assert [p.name for p in written] == ["metrics.json", "ckpt-00000001.json", "ckpt-00000001.safetensors"]
    assert {p.name: mode(p) for p in written} == {p.name: 0o666 & ~umask for p in written}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
