"""Contrastive spaces over polymodal runs, memory banks, Ex-MCR pseudo-pairs, and the frozen base space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close
from torch.utils.data import DataLoader

from polymodal.cli import main
from polymodal.data.sources import build_data
from polymodal.errors import ConfigError
from polymodal.models import BridgeProjector, CMCRProjector
from polymodal.objectives import dense_alignment_loss
from polymodal.runs.bridge import load_space
from polymodal.runs.rundir import load_run
from polymodal.spaces import ContrastiveSpace, ModelSpace, UnifiedSpace, memory_bank, pseudo_pairs

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def test_pseudo_pairs_link_the_spaces_through_the_overlapping_modality():
    # Two texts ("one", "two") seen by both spaces (the leaf swaps the axes), two images in the base and two clips
    # in the leaf; each image and clip lies nearest to its digit's text in its own space. At tau = 1e-3 aggregation
    # is nearest-neighbour retrieval (the runner-up weighs e^-200), so every tuple is exactly one digit.
    img_one, img_two = [0.8, 0.6], [0.6, 0.8]
    aud_one, aud_two = [0.6, 0.8], [0.8, 0.6]
    base = {"text": torch.tensor([E1, E2]), "image": torch.tensor([img_one, img_two])}
    leaf = {"text": torch.tensor([E2, E1]), "audio": torch.tensor([aud_one, aud_two])}
    pairs = pseudo_pairs(base, leaf, "text", temperature=1e-3)
    # Rows: text queries (one, two), then image queries (one, two), then audio queries (one, two).
    assert_close(pairs["base"]["text"], torch.tensor([E1, E2] * 3))
    assert_close(pairs["base"]["image"], torch.tensor([img_one, img_two] * 3))
    assert_close(pairs["leaf"]["text"], torch.tensor([E2, E1] * 3))
    assert_close(pairs["leaf"]["audio"], torch.tensor([aud_one, aud_two] * 3))


def test_pseudo_pairs_without_rotation_start_from_the_overlapping_bank_only():
    # C-MCR's text-centric tuples: the same first two rows as with rotation, and nothing else.
    base = {"text": torch.tensor([E1, E2]), "image": torch.tensor([[0.8, 0.6], [0.6, 0.8]])}
    leaf = {"text": torch.tensor([E2, E1]), "audio": torch.tensor([[0.6, 0.8], [0.8, 0.6]])}
    rotated = pseudo_pairs(base, leaf, "text", temperature=1e-3)
    text_only = pseudo_pairs(base, leaf, "text", temperature=1e-3, rotate=False)
    for side in ("base", "leaf"):
        for m, x in text_only[side].items():
            assert x.shape[0] == 2
            assert_close(x, rotated[side][m][:2])


class _Fixed(ContrastiveSpace):
    """A space that embeds (B, D) inputs as themselves, normalised."""

    def __init__(self, modalities: list[str]) -> None:
        self._modalities = modalities

    @property
    def modalities(self) -> list[str]:
        return self._modalities

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        return nn.functional.normalize(inputs, dim=-1)


def test_unified_space_keeps_base_embeddings_and_projects_the_leaf():
    base, leaf = _Fixed(["image", "text"]), _Fixed(["audio", "text"])
    x = torch.randn(3, 4)
    exmcr = UnifiedSpace(base, leaf, BridgeProjector(leaf_dim=4, base_dim=4, hidden=8, temperature=0.1))
    assert exmcr.modalities == ["image", "text", "audio"]
    assert torch.equal(exmcr.embed("image", x), base.embed("image", x))  # the base space itself
    assert torch.equal(exmcr.embed("text", x), base.embed("text", x))  # the overlap: the base's own text
    assert_close(exmcr.embed("audio", x), exmcr.projector(leaf.embed("audio", x)))
    cmcr = UnifiedSpace(base, leaf, CMCRProjector(base_dim=4, leaf_dim=4, dim=3, hidden=8, temperature=0.1))
    assert_close(cmcr.embed("image", x), cmcr.projector.base(base.embed("image", x)))
    assert_close(cmcr.embed("audio", x), cmcr.projector.leaf(leaf.embed("audio", x)))
    assert not any(p.requires_grad for p in cmcr.projector.parameters())
    with pytest.raises(ConfigError, match="neither bridged space has it"):
        exmcr.embed("vision", x)


def test_pseudo_pairs_average_neighbours_at_a_high_temperature():
    # One image query between two texts at equal similarity: weights 1/2 each, so the retrieved base text is the
    # normalised mean (1, 1)/sqrt(2), and the leaf text is the mean of the leaf rows.
    s = 2**-0.5
    base = {"text": torch.tensor([E1, E2]), "image": torch.tensor([[s, s]])}
    leaf = {"text": torch.tensor([E1, [-1.0, 0.0]]), "audio": torch.tensor([E2])}
    pairs = pseudo_pairs(base, leaf, "text", temperature=1.0)
    assert_close(pairs["base"]["text"][2], torch.tensor([s, s]))
    # Mean of (1, 0) and (-1, 0) is zero: normalize keeps it at zero rather than dividing by it.
    assert_close(pairs["leaf"]["text"][2], torch.tensor([0.0, 0.0]))


def test_pseudo_pairs_need_row_aligned_overlap_banks():
    with pytest.raises(ValueError, match="text banks must embed the same items: 2 rows in base, 1 in leaf"):
        pseudo_pairs({"text": torch.eye(2)}, {"text": torch.eye(2)[:1]}, "text", 0.1)


class _Encoders(nn.Module):
    """A tiny space with dropout and batch norm: both would change outputs or buffers outside eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))

    @property
    def modalities(self) -> list[str]:
        return ["features"]

    def encode(self, inputs: dict[str, Tensor], lengths: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        return {"features": self.net(inputs["features"])}


def test_model_space_is_frozen_and_normalised():
    space = ModelSpace(_Encoders().train())
    assert not space.model.training
    assert not any(p.requires_grad for p in space.model.parameters())
    x = torch.randn(4, 3)
    first = space.embed("features", x)
    assert_close(first.norm(dim=-1), torch.ones(4))
    assert torch.equal(first, space.embed("features", x))
    with pytest.raises(ConfigError, match="the space has no 'audio' encoder \\(it has: features\\)"):
        space.embed("audio", x)


@pytest.fixture(scope="module")
def image_text_run(tmp_path_factory: pytest.TempPathFactory, digit_manifest_writer: Callable[..., Path]) -> Path:
    """A finished one-epoch run on 20 rows of image and text, with encoders of one width."""
    root = tmp_path_factory.mktemp("space")
    digit_manifest_writer(root, "train.csv", rows=20, columns=("image", "text"))
    digit_manifest_writer(root, "test.csv", rows=10, offset=20, columns=("image", "text"))
    encoders = "model.encoders={image: {name: lenet, out_dim: 16}, text: {name: transformer, dim: 16, depth: 1}}"
    argv = ["train", "manifest-joint", "data.train=train.csv", "data.test=test.csv", "data.target=label", encoders]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main([*argv, "trainer.epochs=1", "trainer.progress=false", "--out", "RUN"]) == 0
    return root / "RUN"


def test_bridging_leaves_the_base_space_bit_for_bit_unchanged(image_text_run: Path, monkeypatch):
    monkeypatch.chdir(image_text_run.parent)  # the run's manifest paths are relative to it
    space = load_space(image_text_run)
    assert space.modalities == ["image", "text"]
    config, _, _ = load_run(image_text_run)
    bundle = build_data(config.data, config.trainer.seed, False)
    loader = DataLoader(bundle.train, batch_size=8, collate_fn=bundle.collate())
    before_weights = {k: v.clone() for k, v in space.model.state_dict().items()}
    base = {m: memory_bank(space, m, loader) for m in ("image", "text")}
    assert base["text"].shape == (len(bundle.train), 16)
    assert_close(base["image"].norm(dim=-1), torch.ones(len(bundle.train)))

    # An audio-text leaf space of width 8: its text bank embeds the same items as the base's.
    leaf = {
        "text": nn.functional.normalize(torch.randn(len(bundle.train), 8), dim=-1),
        "audio": nn.functional.normalize(torch.randn(5, 8), dim=-1),
    }
    pairs = pseudo_pairs(base, leaf, "text", temperature=0.05)
    projector = BridgeProjector(leaf_dim=8, base_dim=16, hidden=16, temperature=0.1)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        projected = {m: projector(x) for m, x in pairs["leaf"].items()}
        intra = {m: projector.intra_space(x) for m, x in pairs["leaf"].items()}
        loss = dense_alignment_loss(projected, pairs["base"], projector.scale(), intra)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    after_weights = space.model.state_dict()
    assert all(torch.equal(before_weights[k], after_weights[k]) for k in before_weights)
    assert all(torch.equal(base[m], memory_bank(space, m, loader)) for m in base)
