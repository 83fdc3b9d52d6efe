"""The single-stream encoder, the MoMo model and its dual-stream baseline, built from a recipe config."""

import pytest
import torch
from torch.testing import assert_close

from polymodal.config import validate_config
from polymodal.errors import ConfigError
from polymodal.models import MoMoModel, build_model
from polymodal.models.stream import patchify
from polymodal.strategies.staged import MOMO_STAGES

SHAPES = {"image": (1, 4, 4), "text": ()}


def _model(shared: bool, **extra) -> MoMoModel:
    options = {"shared": shared, "patch_size": 2, "dim": 8, "depth": 1, "heads": 2, "projection_dim": 4, **extra}
    model = {"name": "momo", "options": {**options, "max_text_length": 8}}
    epochs = sum(stage["epochs"] for stage in MOMO_STAGES)  # the staged strategy that momo serves, with its defaults
    config = validate_config({"model": model, "strategy": {"name": "staged"}, "trainer": {"epochs": epochs}}, "test")
    return build_model(config.model, SHAPES, out_dim=3)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_patchify_takes_row_major_square_patches():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)
    assert patches.shape == (1, 4, 4)
    assert patches[0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    assert patches[0, 3].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_dual_model_is_flava_like_towers_plus_fusion_holding_only_what_they_use():
    shared, dual, late = _model(True), _model(False), _model(False, fusion_depth=0)
    assert shared.stream("text") is shared.stream("image") and shared.fusion is None
    assert dual.stream("text") is not dual.stream("image") and dual.fusion is not None and late.fusion is None
    # Each tower holds only its own modality's embeddings and no modality-type table.
    assert dual.encoder.modalities == ("image",) and not hasattr(dual.encoder, "token_embed")
    assert dual.text_encoder.modalities == ("text",) and not hasattr(dual.text_encoder, "patch_embed")
    assert dual.encoder.type_embed is None and shared.encoder.type_embed is not None
    # The fusion stack has the towers' width and, by default, their depth.
    assert len(dual.fusion.layers.layers) == len(dual.encoder.layers.layers) == 1
    assert len(_model(False, fusion_depth=3).fusion.layers.layers) == 3
    # Shared vs dual: the dual model adds a tower's layers twice over (second tower, fusion) plus the fusion's
    # input projections and [CLS_M]; the embeddings are held once either way (split across the towers).
    layers = _count(shared.encoder.layers) + _count(shared.encoder.norm)
    fusion_extra = 2 * (8 * 8 + 8) + 8
    assert _count(dual) - _count(shared) == 2 * layers + fusion_extra + 8 - 2 * 8  # + one more [CLS], - type table
    assert _count(late) - _count(shared) == layers + 8 - 2 * 8 + 3 * 8 * 2  # no fusion, a 4D-wide matching head


def test_fusion_runs_over_both_towers_and_matching_gradients_reach_it():
    model = _model(False)
    image, text, lengths = (
        torch.randn(3, 1, 4, 4),
        torch.tensor([[5, 6, 7], [8, 9, 0], [4, 0, 0]]),
        torch.tensor([3, 2, 1]),
    )
    states = model.encode_pair(image, text, lengths)
    assert states.shape == (3, 1 + (1 + 4) + (1 + 3), 8)  # [CLS_M], image tower states, text tower states
    model.match(image, text, lengths)[:, 1].sum().backward()
    for name, part in (("fusion", model.fusion), ("image tower", model.encoder), ("text tower", model.text_encoder)):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    # Masked tokens of a pair are predicted from the fusion stack, so they see the image.
    a = model.predict_tokens(text, lengths, torch.zeros(3, 1, 4, 4))
    assert a.shape == (3, 3, 258) and not torch.allclose(a, model.predict_tokens(text, lengths, torch.ones(3, 1, 4, 4)))


def test_a_tower_refuses_the_other_modality_and_fusion_depth_is_for_dual_only():
    dual = _model(False)
    with pytest.raises(ValueError, match="embeds image only, not text"):
        dual.encoder(text=torch.tensor([[5, 6]]))
    with pytest.raises(ConfigError, match=r"fusion_depth: only for the dual-stream baseline"):
        _model(True, fusion_depth=2)


def test_embeddings_start_small_like_the_positions():
    encoder = _model(True).encoder
    assert encoder.token_embed.weight.std() < 0.05 and encoder.type_embed.weight.std() < 0.05
    assert encoder.token_embed.weight[0].abs().sum() == 0  # padding


@pytest.mark.parametrize("shared,extra", [(True, {}), (False, {}), (False, {"fusion_depth": 0})])
def test_encode_project_match_shapes_and_padding_invariance(shared, extra):
    model = _model(shared, **extra).eval()
    image = torch.randn(2, 1, 4, 4)
    text = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    lengths = torch.tensor([3, 2])
    features = model.encode({"image": image, "text": text}, {"text": lengths})
    assert features["image"].shape == features["text"].shape == (2, 8)
    # Extra padding changes nothing: padded positions are masked out of attention.
    wider = torch.cat([text, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    assert_close(model.encode({"text": wider}, {"text": lengths})["text"], features["text"], atol=1e-5, rtol=0)
    projected = model.project(features)
    assert_close(projected["image"].norm(dim=-1), torch.ones(2))
    assert model.match(image, text, lengths).shape == (2, 2)
    assert_close(model.match(image, wider, lengths), model.match(image, text, lengths), atol=1e-5, rtol=0)
    assert model.reconstruct_patches(image, torch.zeros(2, 4, dtype=torch.bool)).shape == (2, 4, 4)
    assert model.predict_tokens(text, lengths, image).shape == (2, 4, 258)


def test_shared_stream_lets_text_see_the_image_only_in_a_pair():
    model = _model(True).eval()
    text, lengths = torch.tensor([[5, 6, 7]]), torch.tensor([3])
    a = model.predict_tokens(text, lengths, torch.zeros(1, 1, 4, 4))
    b = model.predict_tokens(text, lengths, torch.ones(1, 1, 4, 4))
    assert not torch.allclose(a, b)


def test_momo_options_are_validated_with_the_key_in_the_message():
    with pytest.raises(ConfigError, match=r"model\.options\.depht: unknown key"):
        validate_config({"model": {"name": "momo", "options": {"depht": 2}}}, "test")
    with pytest.raises(ConfigError, match=r"model\.name: unknown architecture 'mome'"):
        validate_config({"model": {"name": "mome"}}, "test")
    with pytest.raises(ConfigError, match=r"model\.encoders: not used by the 'momo' architecture"):
        validate_config({"model": {"name": "momo", "encoders": {"image": {"name": "lenet"}}}}, "test")
