"""Masked patch and token losses against hand-computed values."""

import math

import torch
from torch.testing import assert_close

from polymodal.objectives import masked_patch_loss, masked_token_loss


def test_masked_patch_loss_averages_squared_error_over_masked_patches_only():
    prediction = torch.tensor([[[1.0, 3.0], [5.0, 5.0], [0.0, 2.0]]])  # (B=1, P=3, K=2)
    target = torch.zeros(1, 3, 2)
    mask = torch.tensor([[True, False, True]])
    # patch 0: (1 + 9) / 2 = 5; patch 2: (0 + 4) / 2 = 2; patch 1 is visible and ignored -> (5 + 2) / 2
    assert_close(masked_patch_loss(prediction, target, mask), torch.tensor(3.5))


def test_masked_patch_loss_is_zero_when_nothing_is_masked():
    assert_close(
        masked_patch_loss(torch.ones(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)),
        torch.tensor(0.0),
    )


def test_masked_token_loss_is_the_nll_at_masked_positions():
    # V = 2. Position 0: logits (0, ln 3) -> p(1) = 3/4. Position 1: uniform -> p = 1/2. Position 2 unmasked.
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [9.0, -9.0]]])
    target = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[True, True, False]])
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    assert_close(masked_token_loss(logits, target, mask), torch.tensor(expected), atol=1e-6, rtol=0)
