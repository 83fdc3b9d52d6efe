import math

import torch

from polymodal.objectives import cross_entropy, l1_loss, mse_loss


def test_cross_entropy_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])
    target = torch.tensor([1, 1])
    # sample 0: p(1) = 3/4; sample 1: p(1) = 1/3
    expected = -(math.log(3 / 4) + math.log(1 / 3)) / 2
    torch.testing.assert_close(cross_entropy(logits, target), torch.tensor(expected), rtol=0, atol=1e-6)


def test_cross_entropy_label_smoothing_hand_computed():
    logits = torch.tensor([[0.0, 0.0]])
    # uniform prediction: loss is log 2 whatever the smoothing
    torch.testing.assert_close(cross_entropy(logits, torch.tensor([0]), 0.2), torch.tensor(math.log(2.0)))


def test_regression_losses_hand_computed():
    prediction = torch.tensor([[1.0], [2.0], [-1.0]])
    target = torch.tensor([0.0, 4.0, -1.0])
    torch.testing.assert_close(l1_loss(prediction, target), torch.tensor(1.0))  # (1 + 2 + 0) / 3
    torch.testing.assert_close(mse_loss(prediction, target), torch.tensor(5.0 / 3.0))  # (1 + 4 + 0) / 3
