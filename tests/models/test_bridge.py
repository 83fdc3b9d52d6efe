"""Ex-MCR's leaf-to-base projector: identity initialisation, normalised output, gradients."""

import math

import torch
from torch.testing import assert_close

from polymodal.models import BridgeProjector


def test_intra_space_part_starts_as_the_identity():
    projector = BridgeProjector(leaf_dim=4, base_dim=6, hidden=8, temperature=0.1)
    x = torch.tensor([[3.0, 0.0, 4.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert_close(projector.intra(x), x)
    assert_close(projector.intra_space(x), torch.tensor([[0.6, 0.0, 0.8, 0.0], [0.0, 1.0, 0.0, 0.0]]))


def test_output_is_unit_length_in_the_base_width():
    projector = BridgeProjector(leaf_dim=4, base_dim=6, hidden=8, temperature=0.1)
    out = projector(torch.randn(3, 4))
    assert out.shape == (3, 6)
    assert_close(out.norm(dim=-1), torch.ones(3))


def test_scale_is_the_inverse_temperature_and_every_part_learns():
    projector = BridgeProjector(leaf_dim=4, base_dim=6, hidden=8, temperature=0.5)
    assert_close(projector.scale(), torch.tensor(2.0))
    assert math.isclose(projector.logit_scale.item(), math.log(2.0), rel_tol=1e-6)
    x = torch.randn(3, 4)
    (projector.scale() * (projector(x).sum() + projector.intra_space(x).sum())).backward()
    assert all(p.grad is not None for p in projector.parameters())
