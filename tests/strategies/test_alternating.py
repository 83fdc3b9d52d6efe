"""MLA (alternating): per-modality substeps, shared-head projection, entropy fusion, state and learning."""

import json

import pytest
import torch

from polymodal.data.spec import DataSpec
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
    return STRATEGIES.build(spec, model=model, data=DataSpec("classification"))


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


def test_regression_averages_the_present_modalities(toy_batch):
    model = build_model(_Cfg, {"features": (3,), "image": (1, 8, 8)}, out_dim=1)
    strategy = STRATEGIES.build(
        STRATEGIES.validate({"name": "alternating"}, "s"), model=model, data=DataSpec("regression")
    )
    batch = toy_batch(n=8)
    batch = {**batch, "target": batch["target"].float()}
    batch["present"]["image"] = torch.tensor([True, False] * 4)
    model.eval()
    with torch.no_grad():
        outputs = strategy.predict(batch)
        features = model.head(model.encoders["features"](batch["inputs"]["features"], batch["lengths"]["features"]))
        image = model.head(model.encoders["image"](batch["inputs"]["image"]))
    assert outputs.shape == (8, 1)
    torch.testing.assert_close(outputs[1::2], features[1::2])  # image absent: the features' output alone
    torch.testing.assert_close(outputs[::2], (features[::2] + image[::2]) / 2)
    loss = strategy.step({"modality": "image", "batch": batch})["loss"]
    assert loss.shape == () and torch.isfinite(loss)


def test_late_fusion_of_unequal_feature_sizes_is_a_one_line_error():
    class Unequal(_Cfg):
        encoders = {**_Cfg.encoders, "image": ENCODERS.validate({"name": "lenet", "out_dim": 4}, "e")}

    with pytest.raises(ConfigError, match="model.fusion: late fusion shares one head, so encoder output sizes must"):
        build_model(Unequal, {"features": (3,), "image": (1, 8, 8)}, out_dim=2)


def test_lr_scale_multiplies_only_that_modality_update(toy_batch):
    plain, scaled = _strategy(), _strategy(lr_scale={"image": 3.0})
    scaled.model.load_state_dict(plain.model.state_dict())
    for strategy in (plain, scaled):
        strategy.model.train()
    grads = []
    for part_plain, part_scaled in zip(plain.substeps(toy_batch(16)), scaled.substeps(toy_batch(16)), strict=True):
        for strategy, part in ((plain, part_plain), (scaled, part_scaled)):
            torch.manual_seed(0)  # the same dropout masks in both models
            strategy.model.zero_grad(set_to_none=True)
            strategy.step(part)["loss"].backward()
            strategy.after_backward()
        grads.append(
            [
                [(a.grad, b.grad) for a, b in zip(x.parameters(), y.parameters(), strict=True) if a.grad is not None]
                for x, y in ((plain.model.encoders, scaled.model.encoders), (plain.model.head, scaled.model.head))
            ]
        )
    features_update, image_update = grads
    for module in features_update:  # "features" has no factor: identical gradients (projection included)
        for a, b in module:
            torch.testing.assert_close(b, a)
    for module in image_update:  # the image update (its encoder and the head) is three times larger
        assert module
        for a, b in module:
            torch.testing.assert_close(b, 3.0 * a)


def test_lr_scale_rejects_unknown_modalities_and_non_positive_factors():
    with pytest.raises(ConfigError, match="lr_scale"):
        _strategy(lr_scale={"audio": 2.0})
    with pytest.raises(ConfigError, match="lr_scale"):
        _strategy(lr_scale={"image": 0.0})


@pytest.mark.parametrize("combine", ["logits", "probabilities"])
def test_predict_combines_logits_or_probabilities(toy_batch, combine):
    # Equal entropies (the same values permuted), so both modalities weigh 1/2. Each is sure of a different class
    # (0 and 2) and gives class 1 its second score: averaging logits adds that shared evidence up (class 1 wins),
    # averaging probabilities keeps the two disagreeing peaks (class 1 gets 0.259 < 0.37).
    strategy = _strategy(combine=combine)
    fixed = {"features": torch.tensor([3.0, 2.0, 0.0]), "image": torch.tensor([0.0, 2.0, 3.0])}
    strategy.model.head = torch.nn.Identity()  # the features are the logits
    strategy.encode = lambda batch: {m: fixed[m].expand(2, 3) for m in fixed}
    batch = toy_batch(2)
    out = strategy.predict(batch)
    if combine == "logits":
        expected = torch.log_softmax(torch.tensor([1.5, 2.0, 1.5]), -1)
    else:
        expected = ((torch.softmax(fixed["features"], -1) + torch.softmax(fixed["image"], -1)) / 2).log()
    torch.testing.assert_close(out, expected.expand(2, 3))
    assert (out.argmax(-1) == 1).all() == (combine == "logits")
