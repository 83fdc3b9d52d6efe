"""The staged (MoMo) strategy: stage schedule, update modes, learning on a tiny batch, state and bad configs."""

import pytest
import torch

from polymodal.config import validate_config
from polymodal.data.collate import Collate
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models import build_model
from polymodal.strategies import STRATEGIES

STAGES = [
    {"data": ["image"], "objectives": ["mpm"], "epochs": 1},
    {"data": ["image", "text"], "objectives": ["mpm", "mlm"], "epochs": 2},
    {"data": ["text", "pair"], "objectives": ["mlm", "itc", "itm"], "epochs": 1},
]


def _strategy(model_options=None, **params):
    options = {"patch_size": 2, "dim": 16, "depth": 1, "heads": 2, "projection_dim": 8, "max_text_length": 8}
    options.update(model_options or {})
    config = validate_config(
        {
            "model": {"name": "momo", "options": options},
            "strategy": {"name": "staged", "stages": STAGES, **params},
            "trainer": {"epochs": sum(s["epochs"] for s in STAGES)},
        },
        "test",
    )
    model = build_model(config.model, {"image": (1, 4, 4), "text": ()}, out_dim=2)
    return STRATEGIES.build(config.strategy, model=model, data=DataSpec("classification"))


def _batch() -> dict:
    """Two classes: a bright or dark image, captioned with token 10 or 20 (plus a shared token)."""
    target = torch.tensor([0, 1, 0, 1])
    samples = [
        {
            "inputs": {"image": torch.full((1, 4, 4), float(t) * 2 - 1), "text": torch.tensor([10 + 10 * int(t), 5])},
            "target": t,
            "index": i,
        }
        for i, t in enumerate(target)
    ]
    return Collate()(samples)


def test_stage_follows_the_epoch_and_the_last_stage_continues():
    strategy = _strategy()
    stages = []
    for epoch in range(6):
        strategy.on_epoch_start(epoch)
        stages.append(strategy.stage)
    assert stages == [0, 1, 1, 2, 2, 2]


@pytest.mark.parametrize(
    "updates,expected", [("simultaneous", [["image", "text"]]), ("alternating", [["image"], ["text"]])]
)
def test_substeps_accumulate_or_alternate_the_active_data(updates, expected):
    strategy = _strategy(updates=updates)
    strategy.on_epoch_start(1)
    parts = strategy.substeps(_batch())
    assert [p["data"] for p in parts] == expected
    out = strategy.step(parts[0])
    assert set(out) == ({"loss", "mpm", "mlm", "probe"} if updates == "simultaneous" else {"loss", "mpm", "probe"})


def test_pair_stage_learns_to_align_and_match():
    strategy = _strategy()
    strategy.on_epoch_start(3)
    batch = _batch()
    optimizer = torch.optim.AdamW(strategy.param_groups(), lr=1e-2)
    first = {k: float(v.detach()) for k, v in strategy.step(batch).items()}
    for _ in range(25):
        loss = strategy.step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = {k: float(v.detach()) for k, v in strategy.step(batch).items()}
    assert set(first) == {"loss", "mlm", "mlm_pair", "itc", "itm", "probe"}
    assert last["loss"] < 0.5 * first["loss"] and last["itc"] < first["itc"] and last["itm"] < first["itm"]
    strategy.model.eval()
    assert strategy.predict(batch).argmax(-1).tolist() == batch["target"].tolist()


def test_state_round_trips_through_json_values():
    strategy = _strategy()
    strategy.on_epoch_start(3)
    other = _strategy()
    other.load_state_dict(strategy.state_dict())
    assert other.stage == 2


def test_a_stage_whose_data_has_no_objective_is_a_one_line_error():
    bad = [{"data": ["image", "pair"], "objectives": ["mpm"], "epochs": 1}]
    with pytest.raises(ConfigError, match=r"strategy\.stages\.0.*data 'pair' has no objective"):
        validate_config({"model": {"name": "momo"}, "strategy": {"name": "staged", "stages": bad}}, "test")


@pytest.mark.parametrize("shared", [True, False])
def test_matching_alone_learns_above_chance_on_a_tiny_case(shared):
    """The joint pass (shared stream, or the dual model's fusion stack) must learn which caption fits which image."""
    torch.manual_seed(0)
    stages = [{"data": ["pair"], "objectives": ["itm"], "epochs": 1}]
    strategy = _strategy({"shared": shared}, stages=stages)
    batch = _batch()
    optimizer = torch.optim.AdamW(strategy.param_groups(), lr=1e-2)
    for _ in range(60):
        loss = strategy.step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    strategy.model.eval()
    swapped = torch.tensor([1, 0, 3, 2])  # each image with a caption of the other class
    with torch.no_grad():
        right = strategy.match(batch, torch.arange(4)).argmax(-1)
        wrong = strategy.match(batch, swapped).argmax(-1)
    assert right.tolist() == [1, 1, 1, 1] and wrong.tolist() == [0, 0, 0, 0]


def test_balanced_matching_weighs_positives_and_negatives_equally():
    strategy = _strategy(stages=[{"data": ["pair"], "objectives": ["itm"], "epochs": 1}])
    strategy.on_epoch_start(0)
    with torch.no_grad():  # a constant "no match" head: 1 positive per pair, 2 negatives per pair
        strategy.model.match_head.weight.zero_()
        strategy.model.match_head.bias.copy_(torch.tensor([2.0, 0.0]))
    itm = float(strategy.step(_batch())["itm"])
    p_no = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    # Balanced: the mean of the positives' and the negatives' losses, not the 1:2-weighted mean.
    assert abs(itm - 0.5 * float(-p_no[1].log() - p_no[0].log())) < 1e-5
