"""Registry sweep: every registered encoder, fusion and head builds from its defaults and runs forward/backward."""

import pytest
import torch

from polymodal.models import ENCODERS, FUSIONS, HEADS, build_model
from polymodal.models.multimodal import MultimodalModel

# One tiny input per kind of encoder input: (input_shape, batch of inputs, lengths).
INPUTS = {
    "image": ((1, 8, 8), torch.randn(3, 1, 8, 8), None),
    "audio": ((1, 8, 8), torch.randn(3, 1, 8, 8), None),
    "text": ((), torch.randint(2, 258, (3, 6)), torch.tensor([6, 3, 1])),
    "features": ((5,), torch.randn(3, 6, 5), torch.tensor([6, 2, 4])),
}
ENCODER_INPUTS = {"lenet": ["image"], "spec_cnn": ["audio"], "transformer": ["text", "features"], "hf": ["text"]}
# Settings an encoder cannot do without (the hf encoder needs a model: a tiny random BERT).
REQUIRED = {
    "hf": {
        "config": {
            "model_type": "bert",
            "vocab_size": 258,
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        }
    }
}


# Encoders built from a trained run directory, swept in their own tests (tests/models/test_from_run.py).
FROM_A_RUN = {"from_run"}


def test_every_encoder_has_inputs_here():
    assert set(ENCODERS.names()) == set(ENCODER_INPUTS) | FROM_A_RUN


@pytest.mark.parametrize("name,modality", [(n, m) for n, ms in ENCODER_INPUTS.items() for m in ms])
def test_encoder_builds_and_backpropagates(name, modality):
    shape, x, lengths = INPUTS[modality]
    spec = ENCODERS.validate({"name": name, **REQUIRED.get(name, {})}, "enc")
    encoder = ENCODERS.build(spec, input_shape=shape, kind=modality)
    out = encoder(x, lengths)
    assert out.shape == (3, encoder.out_dim)
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


@pytest.mark.parametrize("fusion", FUSIONS.names())
@pytest.mark.parametrize("head", HEADS.names())
def test_fusion_and_head_build_into_a_model(fusion, head):
    class Cfg:
        name, options = "multimodal", {}
        unimodal_head = predictor = None
        encoders = {
            "image": ENCODERS.validate({"name": "lenet", "out_dim": 16}, "e"),
            "text": ENCODERS.validate({"name": "transformer", "dim": 16, "depth": 1}, "e"),
        }

    Cfg.fusion = FUSIONS.validate({"name": fusion}, "f")
    Cfg.head = HEADS.validate({"name": head}, "h")
    model = build_model(Cfg, {"image": (1, 8, 8), "text": ()}, out_dim=4)
    assert isinstance(model, MultimodalModel)
    inputs = {"image": INPUTS["image"][1], "text": INPUTS["text"][1]}
    present = {"image": torch.tensor([True, False, True]), "text": torch.tensor([True, True, False])}
    out = model(inputs, present, {"text": INPUTS["text"][2]})
    assert out.shape == (3, 4)
    out.sum().backward()
