"""Adapter settings for Hugging Face models: the tokenizer, the image processor's settings and raw waveforms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.testing import assert_close

from polymodal.errors import ConfigError
from polymodal.modalities import AudioAdapter, AudioConfig, ImageAdapter, ImageConfig, TextAdapter, TextConfig

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "movie"]


def _processor(folder: Path, **settings: object) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


def test_defaults_are_unchanged():
    assert (ImageConfig().mean, ImageConfig().std, ImageConfig().processor) == (0.5, 0.5, None)
    assert AudioConfig().features == "log_mel" and TextConfig().tokenizer is None


def test_image_processor_fills_what_the_config_leaves_unset(tmp_path):
    vit = _processor(
        tmp_path / "vit", size={"height": 24, "width": 24}, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.3, 0.4]
    )
    config = ImageConfig(processor=str(vit))
    assert (config.size, config.channels, config.mean, config.std) == (24, 3, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    assert ImageConfig(processor=str(vit), size=32).size == 32
    assert "size" in config.model_fields_set  # so fitting to the files leaves it alone
    crop = _processor(tmp_path / "crop", size={"shortest_edge": 40}, do_center_crop=True, crop_size=32)
    assert ImageConfig(processor=str(crop)).size == 32
    plain = _processor(tmp_path / "plain", size=20, do_normalize=False)
    assert (ImageConfig(processor=str(plain)).mean, ImageConfig(processor=str(plain)).std) == (0.0, 1.0)


def test_image_processor_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.image.processor: .*preprocessor_config.json not found"):
        ImageConfig(processor=str(tmp_path))
    (tmp_path / "preprocessor_config.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        ImageConfig(processor=str(tmp_path))
    with pytest.raises(ValidationError, match="mean has 3 values for 1 channels"):
        ImageConfig(mean=(0.1, 0.2, 0.3))


def test_per_channel_normalisation():
    config = ImageConfig(size=2, channels=3, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    pixels = np.full((2, 2, 3), 255, dtype=np.uint8)
    out = ImageAdapter(config).from_array(pixels)
    assert_close(out[:, 0, 0], torch.tensor([1.0, 3.0, 1.0]))


@pytest.fixture
def tokenizer_dir(tmp_path) -> Path:
    transformers = pytest.importorskip("transformers")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    transformers.BertTokenizer(str(vocab)).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


def test_text_through_the_model_tokenizer(tokenizer_dir):
    adapter = TextAdapter(TextConfig(tokenizer=str(tokenizer_dir), max_length=4))
    assert adapter.from_text("a good movie").tolist() == [2, 5, 6, 3]  # [CLS] a good [SEP], truncated
    assert adapter.from_text("good").tolist() == [2, 6, 3]
    assert adapter.from_text("").tolist() == [2, 3]
    assert adapter.vocab_size == len(VOCAB)


def test_missing_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path / 'none'))}: tokenizer directory not found$"):
        TextAdapter(TextConfig(tokenizer=str(tmp_path / "none")))
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path))}: cannot load the tokenizer"):
        TextAdapter(TextConfig(tokenizer=str(tmp_path)))


def test_waveform_features_are_the_resampled_samples():
    config = AudioConfig(features="waveform", sample_rate=16000, hop_length=100, max_frames=4)
    adapter = AudioAdapter(config)
    short = adapter.from_wave(np.full(100, 0.5, dtype=np.float32), 8000)  # 200 samples at 16 kHz, padded to 400
    assert short.shape == (1, 400)
    assert_close(short[0, 20:180], torch.full((160,), 0.5), atol=1e-3, rtol=0)
    assert torch.all(short[0, 200:] == 0)
    wave = np.zeros(1000, dtype=np.float32)
    wave[700:800] = 1.0
    centre = adapter.from_wave(wave, 16000)
    assert_close(centre[0], torch.from_numpy(wave[300:700]))
    loudest = AudioAdapter(config.model_copy(update={"crop": "loudest"})).from_wave(wave, 16000)
    assert loudest[0].sum() == 100


def test_audio_processor_fills_the_waveform_settings(tmp_path):
    wav2vec2 = _processor(tmp_path / "w2v", feature_size=1, sampling_rate=16000, do_normalize=True)
    config = AudioConfig(processor=str(wav2vec2))
    assert (config.features, config.sample_rate, config.normalize) == ("waveform", 16000, True)
    assert AudioConfig(processor=str(wav2vec2), normalize=False).normalize is False
    whisper = _processor(tmp_path / "whisper", feature_size=80, sampling_rate=16000)
    with pytest.raises(ConfigError, match="^data.audio.processor: .* has no raw-waveform feature extractor"):
        AudioConfig(processor=str(whisper))


def test_normalised_waveforms_ignore_the_padding():
    config = AudioConfig(features="waveform", normalize=True, sample_rate=8000, hop_length=100, max_frames=2)
    wave = np.array([1.0, 3.0] * 50, dtype=np.float32)  # mean 2, standard deviation 1
    out = AudioAdapter(config).from_wave(wave, 8000)
    assert_close(out[0, :100], torch.tensor([-1.0, 1.0] * 50), atol=1e-4, rtol=0)
    assert torch.all(out[0, 100:] == 0)
