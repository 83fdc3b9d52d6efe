"""Tests of the byte-level tokenizer and text adapter."""

import pytest
import torch

from polymodal.modalities.text import ByteTokenizer, TextAdapter, TextConfig


def test_encode_is_bytes_plus_two():
    tokenizer = ByteTokenizer(max_length=8)
    torch.testing.assert_close(tokenizer.encode("Ab"), torch.tensor([65 + 2, 98 + 2]))
    assert tokenizer.encode("Ab").dtype == torch.long
    assert ByteTokenizer.vocab_size == 258


def test_empty_text_is_one_unknown_token():
    torch.testing.assert_close(ByteTokenizer(4).encode(""), torch.tensor([1]))


def test_round_trip_utf8_and_truncation():
    tokenizer = ByteTokenizer(max_length=4)
    ids = tokenizer.encode("zéro")  # z, é (2 bytes), r -> 4 bytes kept, "o" cut
    assert ids.shape == (4,)
    assert tokenizer.decode(ids) == "zér"
    assert tokenizer.decode(ByteTokenizer(2).encode("é!")) == "é"
    assert tokenizer.decode(torch.tensor([0, 1, 106, 0])) == "h"
    assert tokenizer.decode(ByteTokenizer(1).encode("é")) == ""  # half a character is dropped


def test_decode_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="token ids"):
        ByteTokenizer(4).decode([300])


def test_adapter_uses_config_length():
    adapter = TextAdapter(TextConfig(max_length=3))
    assert adapter.from_text("eight").tolist() == [ord("e") + 2, ord("i") + 2, ord("g") + 2]
    assert adapter.vocab_size == 258
    with pytest.raises(ValueError, match="extra"):
        TextConfig(max_len=3)
