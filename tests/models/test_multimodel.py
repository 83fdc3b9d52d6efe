"""MultiModel body blocks and the assembled model: shapes, causality, ablations, greedy decoding."""

import pytest
import torch

from polymodal.models import ARCHITECTURES
from polymodal.models.blocks import AttentionBlock, SeparableConvBlock
from polymodal.models.multimodel import MultiModel


def _model(**kwargs) -> MultiModel:
    options = {"use_moe": True, "use_attention": True, **kwargs}
    return MultiModel(1, 8, 16, 5, 16, 2, 4, 2, 16, options["use_moe"], options["use_attention"], 0.0)


INPUTS = {
    "image": (torch.randn(3, 1, 8, 8), None),
    "audio": (torch.randn(3, 1, 8, 8), None),
    "text": (torch.randint(2, 258, (3, 6)), torch.tensor([6, 3, 1])),
}


@pytest.mark.parametrize("modality", list(INPUTS))
@pytest.mark.parametrize("use_moe,use_attention", [(True, True), (False, True), (True, False)])
def test_every_input_decodes_to_class_and_byte_logits(modality, use_moe, use_attention):
    model = _model(use_moe=use_moe, use_attention=use_attention)
    x, lengths = INPUTS[modality]
    task = torch.tensor([0, 1, 4])
    states = model(modality, x, lengths, task, torch.randint(2, 258, (3, 4)))
    assert states.shape == (3, 5, 16)
    assert model.class_logits(states).shape == (3, 16) and model.token_logits(states).shape == (3, 5, 258)
    model.token_logits(states).sum().backward()
    assert set(model.moe_layers()) == ({"encoder", "decoder"} if use_moe else set())


def test_ablations_remove_parameters():
    full = sum(p.numel() for p in _model().parameters())
    assert sum(p.numel() for p in _model(use_moe=False).parameters()) < full
    assert sum(p.numel() for p in _model(use_attention=False).parameters()) < full


@pytest.mark.parametrize("causal", [True, False])
def test_causal_conv_never_sees_the_future(causal):
    block = SeparableConvBlock(4, 3, 2, causal=causal)
    x = torch.randn(1, 6, 4)
    changed = x.clone()
    changed[:, 4] += 1.0
    same = torch.allclose(block(x)[:, :4], block(changed)[:, :4])
    assert same == causal


def test_decoder_state_depends_only_on_earlier_outputs():
    model = _model().eval()
    x, lengths = INPUTS["text"]
    tokens = torch.randint(2, 258, (3, 5))
    changed = tokens.clone()
    changed[:, 3] = 7
    task = torch.zeros(3, dtype=torch.long)
    a, b = model("text", x, lengths, task, tokens), model("text", x, lengths, task, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])  # position t reads tokens before t (the task token is first)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_attention_block_ignores_padded_memory():
    block = AttentionBlock(8, 2)
    x, memory = torch.randn(1, 2, 8), torch.randn(1, 3, 8)
    mask = torch.tensor([[True, True, False]])
    other = memory.clone()
    other[:, 2] = 5.0
    torch.testing.assert_close(block(x, memory, mask), block(x, other, mask))


def test_generate_stops_at_the_end_byte_and_pads():
    model = _model().eval()
    torch.nn.init.zeros_(model.token_out.weight)
    with torch.no_grad():
        model.token_out.bias.fill_(-1.0)
        model.token_out.bias[0] = 1.0  # always predict the end byte
    x, lengths = INPUTS["text"]
    out = model.generate("text", x, lengths, torch.zeros(3, dtype=torch.long), max_length=7)
    assert out.shape == (3, 7) and not out.any()


def test_architecture_builds_from_data_shapes():
    spec = ARCHITECTURES.validate({"name": "multimodel", "dim": 16, "heads": 2, "num_experts": 3, "k": 2}, "model")
    model = ARCHITECTURES.build(spec, config=None, shapes={"image": (1, 8, 8), "text": ()}, out_dim=5)
    assert model.modalities == ["image", "text"] and model.class_out.out_features == 5
