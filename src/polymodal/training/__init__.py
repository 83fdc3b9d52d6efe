"""The one training loop and what it needs: checkpoints, logging, seeding, device handling.

Nothing here knows about modalities or models: a strategy owns what a step computes, and the Trainer runs it.
"""

from polymodal.training.checkpoint import CheckpointManager
from polymodal.training.trainer import Trainer, seed_everything

__all__ = ["CheckpointManager", "Trainer", "seed_everything"]
