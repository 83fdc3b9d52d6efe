"""A tiny two-modality task shared by the strategy tests."""

from collections.abc import Callable

import pytest
import torch

from polymodal.data.collate import Collate


def two_modality_batch(n: int = 64, seed: int = 0) -> dict:
    """Label 0/1; the features carry it clearly (sign of their first channel), the image weakly (brightness)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (n,), generator=g)
    features = torch.randn(n, 4, 3, generator=g)
    features[:, :, 0] = (target.float() * 2 - 1)[:, None] + 0.3 * features[:, :, 0]
    image = target.float()[:, None, None, None] + 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    samples = [
        {"inputs": {"features": features[i], "image": image[i]}, "target": target[i], "index": i} for i in range(n)
    ]
    return Collate()(samples)


@pytest.fixture
def toy_batch() -> Callable[..., dict]:
    """``toy_batch(n=64, seed=0)``: a collated batch of the two-modality task."""
    return two_modality_batch
