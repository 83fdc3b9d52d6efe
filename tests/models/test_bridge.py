"""Ex-MCR's leaf-to-base projector: identity initialisation, normalised output, gradients."""

import math

import torch
from torch.testing import assert_close

from polymodal.models import BridgeProjector, CMCRProjector, build_model
from polymodal.models.config import ModelConfig


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


def test_cmcr_projects_both_spaces_into_a_new_one_from_identity_linear_parts():
    projector = CMCRProjector(base_dim=6, leaf_dim=4, dim=5, hidden=8, temperature=0.1)
    assert torch.equal(projector.base.intra.weight, torch.eye(6)) and torch.equal(
        projector.leaf.intra.weight, torch.eye(4)
    )
    assert not hasattr(projector.base, "logit_scale")  # one shared temperature
    assert_close(projector.scale(), torch.tensor(10.0))
    out = projector.base(torch.randn(3, 6)), projector(torch.randn(3, 4))
    assert all(o.shape == (3, 5) for o in out)
    assert_close(out[1].norm(dim=-1), torch.ones(3))


def test_bridge_architectures_are_built_from_the_space_widths():
    exmcr = build_model(ModelConfig(name="exmcr", options={"hidden": 8}), {"base": (6,), "leaf": (4,)}, 1)
    assert isinstance(exmcr, BridgeProjector) and exmcr(torch.randn(2, 4)).shape == (2, 6)
    cmcr = build_model(ModelConfig(name="cmcr", options={"dim": 3}), {"base": (6,), "leaf": (4,)}, 1)
    assert isinstance(cmcr, CMCRProjector) and cmcr(torch.randn(2, 4)).shape == (2, 3)
    import pytest

    from polymodal.errors import ConfigError

    with pytest.raises(ConfigError, match="built by `polymodal bridge`"):
        build_model(ModelConfig(name="exmcr"), {"image": (1, 28, 28)}, 10)
