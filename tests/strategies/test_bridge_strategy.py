"""Bridge (Ex-MCR) strategy: trains the projector alone so that projected leaf embeddings find their base pairs."""

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from torch.utils.data import default_collate

from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models import BridgeProjector, CMCRProjector
from polymodal.objectives import info_nce
from polymodal.spaces import PseudoPairDataset
from polymodal.strategies import STRATEGIES
from polymodal.training import Trainer
from polymodal.training.checkpoint import CheckpointManager
from polymodal.training.config import TrainerConfig


def _tuples(n: int = 32, seed: int = 0) -> dict:
    """Pseudo-pair tuples whose leaf space is a fixed random linear image of the base space, plus noise."""
    leaf_map = torch.randn(8, 6, generator=torch.Generator().manual_seed(100))
    g = torch.Generator().manual_seed(seed)
    base_text = F.normalize(torch.randn(n, 8, generator=g), dim=-1)
    base_image = F.normalize(base_text + 0.1 * torch.randn(n, 8, generator=g), dim=-1)
    leaf_text = F.normalize(base_text @ leaf_map, dim=-1)
    leaf_audio = F.normalize(leaf_text + 0.1 * torch.randn(n, 6, generator=g), dim=-1)
    return {"base": {"image": base_image, "text": base_text}, "leaf": {"audio": leaf_audio, "text": leaf_text}}


def _strategy(**params):
    projector = BridgeProjector(leaf_dim=6, base_dim=8, hidden=16, temperature=0.1)
    spec = STRATEGIES.validate({"name": "bridge", **params}, "strategy")
    return STRATEGIES.build(spec, model=projector, data=DataSpec("classification"))


def test_bridge_learns_to_retrieve_base_pairs_from_the_leaf():
    strategy = _strategy(weights={"audio": {"text": 0.5}})
    assert strategy.weights == {("audio", "text"): 0.5}
    optimizer = torch.optim.AdamW(strategy.param_groups(), lr=2e-2)
    batch = _tuples(n=64)
    first = float(strategy.step(batch)["loss"].detach())
    for _ in range(40):
        loss = strategy.step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(strategy.step(batch)["loss"].detach()) < first
    # Held-out audio (leaf) -> image (base) retrieval: chance is 1/32.
    held_out = _tuples(seed=1)
    with torch.no_grad():
        similarity = strategy.model(held_out["leaf"]["audio"]) @ held_out["base"]["image"].T
    recall_at_1 = float((similarity.argmax(dim=1) == torch.arange(32)).float().mean())
    assert recall_at_1 >= 0.5


def test_bridge_config_rejects_a_negative_intra_weight():
    with pytest.raises(ConfigError, match="strategy.intra_weight"):
        STRATEGIES.validate({"name": "bridge", "intra_weight": -1}, "strategy")


def test_bridge_trains_in_the_trainer_and_checkpoints_the_projector_alone(tmp_path):
    trainer_config = TrainerConfig(epochs=2, device="cpu", progress=False, log_every=1)
    strategy = _strategy()
    Trainer(strategy, trainer_config, tmp_path, default_collate, batch_size=4).fit(PseudoPairDataset(_tuples(n=8)))
    tensors, _ = CheckpointManager(tmp_path / "checkpoints").load("best")
    assert set(tensors) == set(strategy.model.state_dict())  # no weight of either space
    losses = [
        float(row["value"]) for row in csv.DictReader((tmp_path / "log.csv").open()) if row["name"] == "train_loss"
    ]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)


def test_cmcr_loss_is_inter_plus_intra_infonce_in_the_new_space():
    projector = CMCRProjector(base_dim=8, leaf_dim=6, dim=5, hidden=16, temperature=0.1)
    spec = STRATEGIES.validate({"name": "bridge", "intra_weight": 0.5}, "strategy")
    strategy = STRATEGIES.build(spec, model=projector, data=DataSpec("classification"))
    batch = _tuples(n=16)
    loss = strategy.step(batch)["loss"]
    b = {m: projector.base(x) for m, x in batch["base"].items()}
    a = {m: projector.leaf(x) for m, x in batch["leaf"].items()}
    s = projector.scale()
    # inter: text-text and image-audio across the spaces; intra: text-image in base, text-audio in leaf.
    expected = info_nce(b["text"], a["text"], s) + info_nce(b["image"], a["audio"], s)
    expected = expected + 0.5 * (info_nce(b["text"], b["image"], s) + info_nce(a["text"], a["audio"], s))
    assert_close(loss, expected)
