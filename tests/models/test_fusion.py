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
