"""The one training loop and what it needs: checkpoints, logging, seeding, device handling.

Nothing here knows about modalities or models: a strategy owns what a step computes, and the Trainer runs it. The
torch-free ``TrainerConfig`` (the recipe's ``trainer`` section) lives in :mod:`polymodal.training.config`; the names
below are imported on first use, so validating a recipe stays light.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.training.checkpoint import CheckpointManager
    from polymodal.training.setup import seed_everything
    from polymodal.training.trainer import Trainer

_LAZY = {"CheckpointManager": "checkpoint", "Trainer": "trainer", "seed_everything": "setup"}

__all__ = ["CheckpointManager", "Trainer", "seed_everything"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
