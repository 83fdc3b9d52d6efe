import torch
from torch import nn

from polymodal.models.fusion import ConcatFusion, LateFusion


class _Sum(nn.Module):
    """A head whose output is the sum of its input features, so fused values can be checked by hand."""

    def forward(self, x):
        return x.sum(-1, keepdim=True)


def test_concat_zeroes_absent_modalities():
    fusion = ConcatFusion({"a": 2, "b": 1})
    features = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[10.0], [20.0]])}
    present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    # sample 0: 1 + 2 + 10 = 13; sample 1: a absent -> 0 + 0 + 20 = 20
    torch.testing.assert_close(fusion(features, present, _Sum()), torch.tensor([[13.0], [20.0]]))
    assert fusion.out_dim == 3


def test_late_fusion_averages_over_present_only():
    fusion = LateFusion({"a": 2, "b": 2})
    features = {"a": torch.tensor([[1.0, 1.0], [2.0, 2.0]]), "b": torch.tensor([[3.0, 3.0], [5.0, 5.0]])}
    present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    # sample 0: mean(2, 6) = 4; sample 1: only b -> 10
    torch.testing.assert_close(fusion(features, present, _Sum()), torch.tensor([[4.0], [10.0]]))


def test_late_fusion_rejects_unequal_sizes():
    try:
        LateFusion({"a": 2, "b": 3})
    except ValueError as err:
        assert "sizes must match" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_tensor_fusion_outer_product_with_ones():
    from polymodal.models.fusion import TensorFusion

    fusion = TensorFusion({"a": 1, "b": 2})
    assert fusion.out_dim == (1 + 1) * (2 + 1)
    features = {"a": torch.tensor([[2.0], [2.0]]), "b": torch.tensor([[3.0, 5.0], [3.0, 5.0]])}
    present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, False])}
    # [2, 1] outer [3, 5, 1] = [[6, 10, 2], [3, 5, 1]]; with b absent: [2, 1] outer [0, 0, 1] = [[0, 0, 2], [0, 0, 1]].
    expected = torch.tensor([[6.0, 10.0, 2.0, 3.0, 5.0, 1.0], [0.0, 0.0, 2.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(fusion(features, present, nn.Identity()), expected)


def test_lowrank_fusion_hand_computed():
    from polymodal.models.fusion import LowRankFusion

    fusion = LowRankFusion({"a": 1, "b": 1}, rank=2, dim=1)
    with torch.no_grad():
        # factor[m][r] maps [z_m, 1] to one output: rank 0 -> (1, 1) and (2, 0); rank 1 -> (0, 1) and (1, 1).
        fusion.factors["a"].copy_(torch.tensor([[[1.0], [1.0]], [[0.0], [1.0]]]))
        fusion.factors["b"].copy_(torch.tensor([[[2.0], [0.0]], [[1.0], [1.0]]]))
        fusion.bias.fill_(0.5)
    features = {"a": torch.tensor([[3.0]]), "b": torch.tensor([[4.0]])}
    present = {"a": torch.tensor([True]), "b": torch.tensor([True])}
    # rank 0: (3 + 1) * (2 * 4) = 32; rank 1: (0 * 3 + 1) * (4 + 1) = 5; sum + bias = 37.5
    torch.testing.assert_close(fusion(features, present, nn.Identity()), torch.tensor([[37.5]]))
    # b absent: rank 0: 4 * 0 = 0; rank 1: 1 * (0 + 1) = 1; + 0.5
    absent = {"a": torch.tensor([True]), "b": torch.tensor([False])}
    torch.testing.assert_close(fusion(features, absent, nn.Identity()), torch.tensor([[1.5]]))
