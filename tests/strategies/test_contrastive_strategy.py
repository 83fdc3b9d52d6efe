"""Contrastive (CLIP-style) strategy: learns a shared image-text space from pairs, scored by retrieval."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.cli import main
from polymodal.config import validate_config
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models import build_model
from polymodal.models.config import ModelConfig
from polymodal.strategies import STRATEGIES

ENCODERS = "model.encoders={image: {name: lenet, out_dim: 32}, text: {name: transformer, dim: 32, depth: 1}}"


def _strategy(**params):
    config = ModelConfig(
        options={"projection_dim": 8},
        encoders={"image": {"name": "lenet", "out_dim": 16}, "text": {"name": "transformer", "dim": 16, "depth": 1}},
    )
    model = build_model(config, {"image": (1, 28, 28), "text": ()}, 10)
    spec = STRATEGIES.validate({"name": "contrastive", **params}, "strategy")
    return STRATEGIES.build(spec, model=model, data=DataSpec("classification"))


def test_contrastive_needs_projections_and_known_pairs():
    encoders = {"image": {"name": "lenet"}, "text": {"name": "transformer"}}
    with pytest.raises(
        ConfigError, match=r"\(model.options.projection_dim: a width\), not model.options.projection_dim=null"
    ):
        validate_config({"model": {"encoders": encoders}, "strategy": {"name": "contrastive"}}, "recipe")
    with pytest.raises(ConfigError, match="strategy.pairs: 'audio' has no encoder"):
        _strategy(pairs=[["image", "audio"]])
    assert _strategy().pairs == [("image", "text")]


def test_contrastive_step_is_infonce_over_complete_pairs_only():
    strategy = _strategy()
    strategy.model.eval()  # the same embeddings in both passes (batch norm, dropout)
    images, text = torch.rand(4, 1, 28, 28), torch.randint(1, 30, (4, 5))
    present = {"image": torch.tensor([True, True, True, False]), "text": torch.ones(4, dtype=torch.bool)}
    batch = {"inputs": {"image": images, "text": text}, "present": present, "lengths": {}}
    loss = strategy.step(batch)["loss"]
    embedded = strategy.embed(batch)
    logits = strategy.model.scale() * embedded["image"][:3] @ embedded["text"][:3].T
    target = torch.arange(3)
    expected = 0.5 * (
        torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)
    )
    torch.testing.assert_close(loss, expected)


@pytest.mark.e2e
def test_contrastive_run_learns_image_text_retrieval_and_embeds_into_its_space(
    tmp_path: Path, digit_manifest, monkeypatch
):
    digit_manifest("train.csv", rows=200, columns=("image", "text"))
    digit_manifest("test.csv", rows=60, offset=200, columns=("image", "text"))
    monkeypatch.chdir(tmp_path)
    argv = [
        "train", "manifest-joint", "data.train=train.csv", "data.test=test.csv", ENCODERS,
        "strategy={name: contrastive}", "model.options={projection_dim: 16}", "trainer.selection_metric=r1",
        "trainer.epochs=6", "trainer.progress=false", "eval.noise_levels=[0.0]", "--out", "RUN",
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "RUN" / "metrics.json").read_text())
    # Ten digits: chance Recall@1 is about 0.1.
    assert metrics["test"]["image_to_text_r1"] >= 0.5 and metrics["test"]["text_to_image_r1"] >= 0.5
    assert metrics["val"]["r1"] == pytest.approx(
        (metrics["val"]["image_to_text_r1"] + metrics["val"]["text_to_image_r1"]) / 2
    )
    assert main(["embed", "RUN", "--modality", "text", "three", "seven", "--out", "text.npy"]) == 0
    embedded = np.load(tmp_path / "text.npy")
    assert embedded.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, rtol=1e-5)
