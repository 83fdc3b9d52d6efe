"""Losses and alignment terms, one concern per file, as functions of tensors.

Objectives import only torch. Learnable parts (temperatures, heads) belong to models and are passed in; a strategy
combines objectives and names the parts of its loss.
"""

from polymodal.objectives.classification import cross_entropy
from polymodal.objectives.regression import l1_loss, mse_loss

__all__ = ["cross_entropy", "l1_loss", "mse_loss"]
