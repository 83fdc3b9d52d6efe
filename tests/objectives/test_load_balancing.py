"""Importance and load balancing loss against hand-computed values."""

import torch

from polymodal.objectives.load_balancing import cv_squared, load_balancing_loss


def test_cv_squared_hand_computed():
    # mean 2, population variance 2/3 -> (2/3) / 4
    torch.testing.assert_close(cv_squared(torch.tensor([1.0, 2.0, 3.0])), torch.tensor(1 / 6))
    torch.testing.assert_close(cv_squared(torch.tensor([2.0, 2.0, 2.0])), torch.tensor(0.0))
    torch.testing.assert_close(cv_squared(torch.tensor([5.0])), torch.tensor(0.0))


def test_balancing_loss_weights_importance_and_load():
    importance = torch.tensor([1.0, 2.0, 3.0])  # CV^2 = 1/6
    load = torch.tensor([0.0, 4.0, 2.0])  # mean 2, variance 8/3 -> CV^2 = 2/3
    loss = load_balancing_loss(importance, load, importance_weight=0.5, load_weight=2.0)
    torch.testing.assert_close(loss, torch.tensor(0.5 / 6 + 2.0 * 2 / 3))


def test_balancing_loss_is_differentiable_in_importance():
    importance = torch.tensor([1.0, 3.0], requires_grad=True)
    load_balancing_loss(importance, torch.tensor([2.0, 2.0]), 1.0, 1.0).backward()
    assert importance.grad[0] < 0 < importance.grad[1]  # the loss pushes the two experts toward equal use
