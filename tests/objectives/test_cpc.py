import math

import torch

from polymodal.objectives import cpc_loss


def test_cpc_loss_hand_computed():
    prediction = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised: (1, 0), (0, 1)
    target = torch.tensor([[5.0, 0.0], [1.0, 1.0]])  # normalised: (1, 0), (1, 1)/sqrt(2)
    r = 1 / math.sqrt(2)
    # row 0 scores (1, 0); row 1 scores (r, r): -(s_ii - logsumexp_j s_ij) per row
    row0 = -(1.0 - math.log(math.e + 1.0))
    row1 = -(r - math.log(2 * math.exp(r)))  # = log 2
    expected = torch.tensor((row0 + row1) / 2)
    torch.testing.assert_close(cpc_loss(prediction, target), expected, rtol=0, atol=1e-6)


def test_cpc_loss_mask_drops_missing_samples():
    prediction = torch.tensor([[2.0, 0.0], [0.0, 3.0], [7.0, 7.0]])
    target = torch.tensor([[5.0, 0.0], [1.0, 1.0], [-1.0, 9.0]])
    masked = cpc_loss(prediction, target, torch.tensor([True, True, False]))
    torch.testing.assert_close(masked, cpc_loss(prediction[:2], target[:2]))
    assert cpc_loss(prediction, target, torch.tensor([True, False, False])).item() == 0.0
