"""Fixtures of the Trainer tests; the toy data, model and strategy they use are in toys.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from toys import ToyDataset, ToyModel, ToyStrategy, accuracy_on

from polymodal.data.collate import Collate
from polymodal.training import Trainer
from polymodal.training.config import TrainerConfig


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., Trainer]:
    """Builds a Trainer on a fresh ToyModel in ``tmp_path / run``; keyword arguments go to ``TrainerConfig``."""

    def make(nan_at: int | None = None, seed: int = 0, **config: Any) -> Trainer:
        torch.manual_seed(seed)
        settings = {"device": "cpu", "progress": False, "log_every": 1, "epochs": 2, "seed": seed, **config}
        strategy = ToyStrategy(ToyModel(), nan_at=nan_at)
        return Trainer(
            strategy, TrainerConfig(**settings), tmp_path / "run", Collate(), 4, accuracy_on(ToyDataset(16, seed=1))
        )

    return make
