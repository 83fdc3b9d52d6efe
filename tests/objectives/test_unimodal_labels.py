import math

import torch

from polymodal.objectives import l1_loss, relative_distance, smooth_labels, unimodal_labels


def test_relative_distance_hand_computed():
    positive, negative = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 0.0])
    feature = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    # sample 0: |f-p| = 1, |f-n| = 2 -> (2 - 1) / 1 = 1; sample 1: |f-p| = 4, |f-n| = 5 -> (5 - 4) / 4
    expected = torch.tensor([1.0, 0.25])
    torch.testing.assert_close(relative_distance(feature, positive, negative), expected, rtol=0, atol=1e-6)


def test_unimodal_label_rule_hand_computed():
    fused_label = torch.tensor([2.0, 3.0, -1.0])
    fused_delta = torch.tensor([2.0, 1.0, -0.5])
    unimodal_delta = torch.tensor([1.0, 4.0, 0.5])
    # sample 0: alpha = 1/2 -> 0.5*0.5*2 + 0.5*(2 + 1 - 2) = 0.5 + 0.5 = 1.0
    # sample 1: alpha = 4 -> 0.5*4*3 + 0.5*(3 + 4 - 1) = 6 + 3 = 9, clipped to 3
    # sample 2: alpha = -1 -> 0.5*(-1)*(-1) + 0.5*(-1 + 0.5 + 0.5) = 0.5 + 0 = 0.5 (closer to positive: label rises)
    expected = torch.tensor([1.0, 3.0, 0.5])
    torch.testing.assert_close(unimodal_labels(fused_label, fused_delta, unimodal_delta, 3.0), expected)


def test_smooth_labels_hand_computed():
    previous, new = torch.tensor([1.0]), torch.tensor([4.0])
    torch.testing.assert_close(smooth_labels(previous, new, 1), new)  # (0/2) * 1 + (2/2) * 4
    torch.testing.assert_close(smooth_labels(previous, new, 3), torch.tensor([2.5]))  # (2/4) * 1 + (2/4) * 4


def test_weighted_l1_hand_computed():
    prediction, target = torch.tensor([0.0, 0.0]), torch.tensor([1.0, -2.0])
    weight = torch.tensor([math.tanh(1.0), 0.0])
    torch.testing.assert_close(l1_loss(prediction, target, weight), torch.tensor(math.tanh(1.0) / 2))
