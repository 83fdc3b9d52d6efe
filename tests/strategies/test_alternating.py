"""MLA (alternating): per-modality substeps, shared-head projection, entropy fusion, state and learning."""

import json

import pytest
import torch

from polymodal.errors import ConfigError
from polymodal.models import ENCODERS, FUSIONS, HEADS, build_model
from polymodal.strategies import STRATEGIES
from polymodal.strategies.alternating import entropy_weights


class _Cfg:
    name, options = "multimodal", {}
    unimodal_head = predictor = None
    encoders = {
        "features": ENCODERS.validate({"name": "transformer", "dim": 8, "depth": 1, "heads": 2}, "e"),
        "image": ENCODERS.validate({"name": "lenet", "out_dim": 8, "channels": [4, 4]}, "e"),
    }
    fusion = FUSIONS.validate({"name": "late"}, "f")
    head = HEADS.validate({"name": "linear"}, "h")


def _strategy(**params):
    model = build_model(_Cfg, {"features": (3,), "image": (1, 8, 8)}, out_dim=2)
    spec = STRATEGIES.validate({"name": "alternating", **params}, "s")
    return STRATEGIES.build(spec, model=model, task="classification")


def test_entropy_weights_hand_computed():
    # Sample 0: modality a is certain (entropy 0), b uniform over 2 classes (entropy ln 2): weights are
    # softmax(0, -ln 2) = (1 / 1.5, 0.5 / 1.5) = (2/3, 1/3). Sample 1: b absent, so a gets everything.
    big = 60.0
    logits = torch.tensor([[[big, 0.0], [0.0, 0.0]], [[0.0, 0.0], [big, 0.0]]])
    present = torch.tensor([[True, True], [True, False]])
    weights = entropy_weights(logits, present)
    torch.testing.assert_close(weights, torch.tensor([[2 / 3, 1 / 3], [1.0, 0.0]]), atol=1e-6, rtol=0)
    # Per sample, not over the batch: each row sums to one.
    torch.testing.assert_close(weights.sum(1), torch.ones(2))


def test_substeps_one_per_modality_and_step_uses_only_that_encoder(toy_batch):
    strategy = _strategy()
    batch = toy_batch(8)
    parts = strategy.substeps(batch)
    assert [p["modality"] for p in parts] == ["features", "image"]
    strategy.model.zero_grad()
    strategy.step(parts[1])["loss"].backward()
    assert all(p.grad is None for p in strategy.model.encoders["features"].parameters())
    assert all(p.grad is not None for p in strategy.model.encoders["image"].parameters())
    assert strategy.model.head.net.weight.grad is not None


def test_after_backward_projects_head_gradient_orthogonal_to_earlier_features(toy_batch):
    strategy = _strategy(alpha=1e-6, decay_updates=10**6)
    batch = toy_batch(16)
    first, second = strategy.substeps(batch)
    strategy.model.train()
    strategy.step(first)["loss"].backward()
    stored = strategy._inputs["net"].clone()  # mean feature of the first modality's batch (head input)
    strategy.after_backward()
    strategy.model.zero_grad()
    strategy.step(second)["loss"].backward()
    raw = strategy.model.head.net.weight.grad.clone()
    strategy.after_backward()
    projected = strategy.model.head.net.weight.grad
    assert float((raw @ stored).abs().max()) > 1e-3  # the raw gradient would have changed outputs on it
    torch.testing.assert_close(projected @ stored, torch.zeros(2), atol=1e-4, rtol=0)
    assert strategy.updates == 2


def test_projection_off_leaves_gradients_alone(toy_batch):
    strategy = _strategy(projection=False)
    strategy.model.train()
    for part in strategy.substeps(toy_batch(16)):
        strategy.model.zero_grad()
        strategy.step(part)["loss"].backward()
        raw = strategy.model.head.net.weight.grad.clone()
        strategy.after_backward()
        torch.testing.assert_close(strategy.model.head.net.weight.grad, raw)
    torch.testing.assert_close(strategy.projectors["net"], torch.eye(8))


def test_state_dict_is_json_and_restores(toy_batch):
    strategy = _strategy()
    strategy.model.train()
    for part in strategy.substeps(toy_batch(16)):
        strategy.model.zero_grad()
        strategy.step(part)["loss"].backward()
        strategy.after_backward()
    state = json.loads(json.dumps(strategy.state_dict()))
    other = _strategy()
    other.load_state_dict(state)
    assert other.updates == strategy.updates == 2
    torch.testing.assert_close(other.projectors["net"], strategy.projectors["net"])


def test_alternating_learns(toy_batch):
    strategy = _strategy()
    optimizer = torch.optim.AdamW(strategy.param_groups(), lr=1e-2)
    batch = toy_batch()
    strategy.model.train()
    first = [float(strategy.step(p)["loss"].detach()) for p in strategy.substeps(batch)]
    for _ in range(20):
        for part in strategy.substeps(batch):
            loss = strategy.step(part)["loss"]
            optimizer.zero_grad()
            loss.backward()
            strategy.after_backward()
            optimizer.step()
    last = [float(strategy.step(p)["loss"].detach()) for p in strategy.substeps(batch)]
    assert all(b < a for a, b in zip(first, last, strict=True))
    strategy.model.eval()
    test = toy_batch(seed=1)
    with torch.no_grad():
        outputs = strategy.predict(test)
    assert float((outputs.argmax(-1) == test["target"]).float().mean()) >= 0.9
    torch.testing.assert_close(outputs.exp().sum(-1), torch.ones(len(outputs)))


def test_rejects_regression_and_unequal_feature_sizes():
    model = build_model(_Cfg, {"features": (3,), "image": (1, 8, 8)}, out_dim=1)
    spec = STRATEGIES.validate({"name": "alternating"}, "s")
    with pytest.raises(ConfigError, match="classification"):
        STRATEGIES.build(spec, model=model, task="regression")

    class Unequal(_Cfg):
        encoders = {**_Cfg.encoders, "image": ENCODERS.validate({"name": "lenet", "out_dim": 4}, "e")}
        fusion = FUSIONS.validate({"name": "concat"}, "f")

    model = build_model(Unequal, {"features": (3,), "image": (1, 8, 8)}, out_dim=2)
    with pytest.raises(ConfigError, match="out_dim must match"):
        STRATEGIES.build(spec, model=model, task="classification")
