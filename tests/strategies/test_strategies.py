"""Each strategy learns on a tiny two-modality task, and honours its contract."""

import torch

from polymodal.data.spec import DataSpec
from polymodal.models import ENCODERS, FUSIONS, HEADS, build_model
from polymodal.strategies import STRATEGIES


class _Cfg:
    name, options = "multimodal", {}
    unimodal_head = predictor = None
    encoders = {
        "features": ENCODERS.validate({"name": "transformer", "dim": 16, "depth": 1, "heads": 2}, "e"),
        "image": ENCODERS.validate({"name": "lenet", "out_dim": 16, "channels": [4, 8]}, "e"),
    }
    fusion = FUSIONS.validate({"name": "concat"}, "f")
    head = HEADS.validate({"name": "mlp", "hidden": 16}, "h")


def _train(make_batch, name: str, steps: int = 60, **params) -> tuple[object, float, float]:
    torch.manual_seed(0)
    model = build_model(_Cfg, {"features": (3,), "image": (1, 8, 8)}, out_dim=2)
    strategy = STRATEGIES.build(
        STRATEGIES.validate({"name": name, **params}, "s"), model=model, data=DataSpec("classification")
    )
    optimizer = torch.optim.AdamW(strategy.param_groups(), lr=3e-3)
    batch = make_batch()
    first = float(strategy.step(batch)["loss"].detach())
    for _ in range(steps):
        loss = strategy.step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        strategy.after_backward()
        optimizer.step()
    model.eval()
    test = make_batch(seed=1)
    with torch.no_grad():
        accuracy = float((strategy.predict(test).argmax(-1) == test["target"]).float().mean())
    return strategy, first, accuracy


def test_joint_learns(toy_batch):
    strategy, first, accuracy = _train(toy_batch, "joint", modality_dropout=0.3)
    assert float(strategy.step(toy_batch())["loss"].detach()) < first
    assert accuracy >= 0.9


def _alone_accuracy(strategy, batch, modality: str) -> float:
    only = {m: (p if m == modality else torch.zeros_like(p)) for m, p in batch["present"].items()}
    with torch.no_grad():
        outputs = strategy.predict({**batch, "present": only})
    return float((outputs.argmax(-1) == batch["target"]).float().mean())


def test_joint_unimodal_losses_score_each_modality_alone(toy_batch):
    test = toy_batch(n=256, seed=3)
    taught, first, accuracy = _train(toy_batch, "joint", unimodal_weight=1.0)
    assert accuracy >= 0.9
    assert _alone_accuracy(taught, test, "image") >= 0.75 and _alone_accuracy(taught, test, "features") >= 0.9
    batch = toy_batch()
    losses = taught.step(batch)
    assert set(losses) == {"loss", "fused_loss", "features_loss", "image_loss"}
    assert float(losses["loss"].detach()) < first
    # The total is the fused loss plus the weight times the mean of the per-modality losses, each computed as
    # "that modality alone" is evaluated (the other marked absent).
    taught.model.eval()
    with torch.no_grad():
        parts = taught.step(batch)
        image = taught.loss(
            taught.predict(
                {**batch, "present": {**batch["present"], "features": torch.zeros_like(batch["present"]["features"])}}
            ),
            batch["target"],
        )
    torch.testing.assert_close(parts["image_loss"], image)
    torch.testing.assert_close(parts["loss"], parts["fused_loss"] + (parts["image_loss"] + parts["features_loss"]) / 2)


def test_unimodal_learns_and_ignores_other_modalities(toy_batch):
    strategy, _, accuracy = _train(toy_batch, "unimodal", modality="features")
    assert accuracy >= 0.9
    batch = toy_batch(seed=2)
    changed = {**batch, "inputs": {**batch["inputs"], "image": torch.randn_like(batch["inputs"]["image"])}}
    torch.testing.assert_close(strategy.predict(batch), strategy.predict(changed))


def test_modality_dropout_never_hides_every_modality():
    model = build_model(_Cfg, {"features": (3,), "image": (1, 8, 8)}, out_dim=2)
    strategy = STRATEGIES.build(
        STRATEGIES.validate({"name": "joint", "modality_dropout": 0.9}, "s"),
        model=model,
        data=DataSpec("classification"),
    )
    present = {"features": torch.ones(500, dtype=torch.bool), "image": torch.tensor([True, False] * 250)}
    dropped = strategy._drop(present)
    assert bool((dropped["features"] | dropped["image"]).all())
    assert not bool((dropped["image"] & ~present["image"]).any())  # never revives an absent modality
    both = present["image"]
    # where both are present: both kept with probability 0.1 * 0.1; otherwise exactly one survives
    assert float((dropped["features"] & dropped["image"])[both].float().mean()) < 0.05
    assert 0.35 < float(dropped["image"][both].float().mean()) < 0.65
