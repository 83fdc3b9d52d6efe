"""The single-stream encoder, the MoMo model and its dual-stream baseline, built from a recipe config."""

import pytest
import torch
from torch.testing import assert_close

from polymodal.config import validate_config
from polymodal.errors import ConfigError
from polymodal.models import MoMoModel, build_model
from polymodal.models.stream import patchify

SHAPES = {"image": (1, 4, 4), "text": ()}


def _model(shared: bool) -> MoMoModel:
    options = {"shared": shared, "patch_size": 2, "dim": 8, "depth": 1, "heads": 2, "projection_dim": 4}
    config = validate_config({"model": {"name": "momo", "options": {**options, "max_text_length": 8}}}, "test")
    return build_model(config.model, SHAPES, out_dim=3)


def test_patchify_takes_row_major_square_patches():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)
    assert patches.shape == (1, 4, 4)
    assert patches[0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    assert patches[0, 3].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_shared_model_has_one_stack_and_about_half_the_dual_parameters():
    shared, dual = _model(True), _model(False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    stack = sum(p.numel() for p in shared.encoder.parameters())
    assert count(dual) - count(shared) == stack + 3 * 8 * 2  # a second stream, and a wider (4D) matching head
    assert shared.stream("text") is shared.stream("image") and dual.stream("text") is not dual.stream("image")


@pytest.mark.parametrize("shared", [True, False])
def test_encode_project_match_shapes_and_padding_invariance(shared):
    model = _model(shared).eval()
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
