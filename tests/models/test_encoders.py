"""The CNN encoders' building blocks against plain PyTorch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polymodal.models import encoders
from polymodal.models.encoders import ENCODERS, MaxPool2d


def _with_ties(shape: tuple[int, ...]) -> torch.Tensor:
    """Random values with constant blocks, as a blank image background gives, so windows hold equal maxima."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[:, :, :6, :6] = 0.25
    x[:, :, -5:, 3:9] = -1.0
    return x


@pytest.mark.parametrize(
    "settings",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 3, "stride": 2, "ceil_mode": True},
        {"kernel_size": (2, 3), "stride": (2, 1), "dilation": 1},
    ],
)
def test_max_pool_equals_pytorch_bit_for_bit(settings: dict) -> None:
    """Values and gradients equal nn.MaxPool2d exactly, ties and overlapping windows included."""
    x = _with_ties((3, 4, 15, 17))
    grad = torch.randn(nn.MaxPool2d(**settings)(x).shape, generator=torch.Generator().manual_seed(1))
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = MaxPool2d(**settings)(ours), nn.MaxPool2d(**settings)(theirs)
    out.backward(grad)
    expected.backward(grad)
    assert out.is_contiguous() and torch.equal(out, expected)
    assert ours.grad is not None and theirs.grad is not None
    assert ours.grad.is_contiguous() and torch.equal(ours.grad, theirs.grad)
    with torch.no_grad():
        assert torch.equal(MaxPool2d(**settings)(x), expected.detach())


@pytest.mark.parametrize("shape", [(3, 4, 15, 17), (2, 3, 2, 2), (1, 2, 6, 9)])
def test_max_of_2x2_windows_equals_pytorch_bit_for_bit(shape: tuple[int, ...]) -> None:
    """The evaluation path for 2x2 windows: ties, -inf, NaN and odd sizes give nn.MaxPool2d(2)'s values."""
    x = _with_ties(shape) if shape[-1] >= 9 else torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    x[0, 0, 0, :2] = torch.tensor([-0.0, 0.0])
    x[0, 0, 1, :2] = torch.tensor([0.0, -0.0])
    x[-1, -1, :2, :2] = float("-inf")
    x[0, 1, 1, 1] = float("nan")
    expected = nn.MaxPool2d(2)(x)
    out = encoders._max_of_2x2_windows(x)
    assert torch.equal(out.isnan(), expected.isnan())
    assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(expected))  # 0.0 == -0.0: either zero of a tie
    assert out.is_contiguous() and out.dtype == expected.dtype


def test_max_pool_takes_the_2x2_path_only_without_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = encoders._max_of_2x2_windows

    def spy(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(encoders, "_max_of_2x2_windows", spy)
    x = _with_ties((2, 3, 9, 9))
    with torch.no_grad():
        assert torch.equal(MaxPool2d(2)(x), nn.MaxPool2d(2)(x))
        assert torch.equal(MaxPool2d(2, stride=1)(x), nn.MaxPool2d(2, stride=1)(x))  # other windows: not this path
        assert torch.equal(MaxPool2d(2, ceil_mode=True)(x), nn.MaxPool2d(2, ceil_mode=True)(x))
    assert calls == [(2, 3, 9, 9)]
    MaxPool2d(2)(x.clone().requires_grad_())  # training keeps the channels-last kernel and its indices
    assert len(calls) == 1


def test_max_pool_keeps_other_inputs_on_pytorch_path() -> None:
    x = _with_ties((2, 3, 8, 8))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(MaxPool2d(2)(channels_last), nn.MaxPool2d(2)(x))
    assert torch.equal(MaxPool2d(2)(x[0]), nn.MaxPool2d(2)(x[0]))  # unbatched (C, H, W)


@pytest.mark.parametrize(
    ("name", "shape", "keys"),
    [
        ("lenet", (1, 28, 28), ["features.0.weight", "features.1.weight", "features.4.weight", "features.5.weight"]),
        ("spec_cnn", (1, 20, 32), ["features.0.weight", "features.1.weight", "features.2.weight", "features.5.weight"]),
    ],
)
def test_cnn_state_dict_keys_are_stable(name: str, shape: tuple[int, ...], keys: list[str]) -> None:
    """Checkpoints written before the pooling blocks changed still load: parameter keys keep their positions."""
    encoder = ENCODERS.build(ENCODERS.validate({"name": name, "out_dim": 8}, "e"), input_shape=shape)
    assert set(keys) <= set(encoder.state_dict())
