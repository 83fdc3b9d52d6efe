"""The self_mi strategy learns, generates unimodal labels, switches its parts off, and round-trips its state."""

import json

import torch

from polymodal.data.collate import Collate
from polymodal.data.spec import DataSpec
from polymodal.models import ENCODERS, FUSIONS, HEADS, build_model
from polymodal.strategies import STRATEGIES


class _Cfg:
    name, options = "multimodal", {}
    encoders = {
        m: ENCODERS.validate({"name": "transformer", "dim": 8, "depth": 1, "heads": 2}, "e")
        for m in ("vision", "acoustic")
    }
    fusion = FUSIONS.validate({"name": "concat"}, "f")
    head = HEADS.validate({"name": "mlp", "hidden": 16}, "h")
    unimodal_head = HEADS.validate({"name": "mlp", "hidden": 8}, "u")
    predictor = HEADS.validate({"name": "linear"}, "p")


def _batch(n: int = 32) -> dict:
    """Target = 2 * (mean of vision's first channel) + (mean of acoustic's first channel): vision matters more."""
    g = torch.Generator().manual_seed(0)
    vision, acoustic = torch.randn(n, 4, 3, generator=g), torch.randn(n, 3, 2, generator=g)
    target = 2 * vision[:, :, 0].mean(1) + acoustic[:, :, 0].mean(1)
    samples = [
        {"inputs": {"vision": vision[i], "acoustic": acoustic[i]}, "target": target[i], "index": i} for i in range(n)
    ]
    return Collate()(samples)


def _strategy(**overrides):
    spec = STRATEGIES.validate({"name": "self_mi", **overrides}, "strategy")
    model = build_model(_Cfg, {"vision": (3,), "acoustic": (2,)}, 1)
    return STRATEGIES.build(spec, model=model, data=DataSpec("regression"))


def _train(strategy, batch, steps: int, epochs: int = 1) -> list[float]:
    optimizer = torch.optim.AdamW([g for group in strategy.param_groups() for g in group["params"]], lr=1e-2)
    losses = []
    for epoch in range(epochs):
        strategy.on_epoch_start(epoch)
        for _ in range(steps):
            out = strategy.step(batch)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            losses.append(out["fused"].item())
    return losses


def test_self_mi_learns_and_generates_labels():
    strategy, batch = _strategy(), _batch()
    losses = _train(strategy, batch, steps=8, epochs=3)
    assert losses[-1] < 0.6 * losses[0]
    out = strategy.step(batch)
    assert {"loss", "fused", "unimodal_vision", "unimodal_acoustic", "cpc_vision", "cpc_acoustic"} <= set(out)
    labels = strategy.generated_labels()
    vision = torch.tensor([labels["vision"][i] for i in range(32)])
    # From the second epoch on, generated labels depart from the human label but stay within the bound.
    assert not torch.allclose(vision, batch["target"])
    assert vision.abs().max() <= 3.0


def test_ablations_switch_parts_off():
    batch = _batch()
    assert set(_strategy(ulgm=False, cpc=False).step(batch)) == {"loss", "fused"}
    assert set(_strategy(ulgm=False).step(batch)) == {"loss", "fused", "cpc_vision", "cpc_acoustic"}
    assert set(_strategy(cpc=False).step(batch)) == {"loss", "fused", "unimodal_vision", "unimodal_acoustic"}


def test_state_round_trips_through_json():
    batch = _batch()
    strategy = _strategy()
    _train(strategy, batch, steps=2, epochs=2)
    state = json.loads(json.dumps(strategy.state_dict()))
    restored = _strategy()
    restored.model.load_state_dict(strategy.model.state_dict())
    restored.load_state_dict(state)
    assert restored.generated_labels() == strategy.generated_labels()
    assert restored.epoch == strategy.epoch
    # The next step moves both the same way.
    strategy.model.eval(), restored.model.eval()
    strategy.step(batch), restored.step(batch)
    assert restored.generated_labels() == strategy.generated_labels()
    for key, centre in strategy.centres.items():
        for side, value in centre.items():
            torch.testing.assert_close(restored.centres[key][side], value)
