"""Losses and alignment terms, one concern per file, as functions of tensors.

Objectives import only torch. Learnable parts (temperatures, heads) belong to models and are passed in; a strategy
combines objectives and names the parts of its loss.
"""

from polymodal.objectives.alignment import aggregate, dense_alignment_loss
from polymodal.objectives.classification import cross_entropy
from polymodal.objectives.contrastive import info_nce
from polymodal.objectives.cpc import cpc_loss
from polymodal.objectives.masked_modeling import masked_patch_loss, masked_token_loss
from polymodal.objectives.matching import hard_negatives
from polymodal.objectives.projection import project_gradient, update_projector
from polymodal.objectives.regression import l1_loss, mse_loss
from polymodal.objectives.unimodal_labels import relative_distance, smooth_labels, unimodal_labels

__all__ = [
    "aggregate",
    "cpc_loss",
    "cross_entropy",
    "dense_alignment_loss",
    "hard_negatives",
    "info_nce",
    "l1_loss",
    "masked_patch_loss",
    "masked_token_loss",
    "mse_loss",
    "project_gradient",
    "relative_distance",
    "smooth_labels",
    "unimodal_labels",
    "update_projector",
]
