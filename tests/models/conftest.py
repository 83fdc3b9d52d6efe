"""Tiny random-initialised Hugging Face models saved offline, and a separable two-class manifest to train on."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy.io import wavfile

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "good", "great", "bad", "awful", "movie", "film"]
PHRASES = (("a good movie", "the great film", "good good"), ("a bad movie", "the awful film", "bad bad"))
LAYERS = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
# Audio: 0.1 s clips at 8 kHz; the wav2vec2 input is the 16 kHz waveform, 1600 samples.
FILE_RATE, MODEL_RATE, CLIP_SAMPLES = 8000, 16000, 800
WAV2VEC2 = {
    "conv_dim": [8, 8],
    "conv_stride": [5, 4],
    "conv_kernel": [10, 4],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT-like text model with its word-piece tokenizer (built from a tiny vocabulary file)."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(WORDS), max_position_embeddings=16, **LAYERS)
    transformers.BertModel(config).save_pretrained(path)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    transformers.BertTokenizer(str(vocab)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ViT-like image model (16 x 16 RGB, 8-pixel patches) with its image processor."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=8, num_channels=3, **LAYERS)
    transformers.ViTModel(config).save_pretrained(path)
    processor = transformers.ViTImageProcessorPil(
        size={"height": 16, "width": 16}, image_mean=[0.5, 0.4, 0.3], image_std=[0.25, 0.5, 0.5]
    )
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def wav2vec2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wav2vec2-like audio model over raw waveforms, with its feature extractor (16 kHz, normalised clips)."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("wav2vec2")
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**WAV2VEC2, **LAYERS)).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=MODEL_RATE, do_normalize=True).save_pretrained(path)
    return path


def write_toy_manifest(folder: Path, name: str, rows: int, seed: int) -> Path:
    """Two separable classes: a noisy reddish or bluish picture (16 x 16 RGB PNG), a low or high tone (8 kHz WAV) and
    a positive or negative phrase; row r has class r % 2."""
    rng = np.random.default_rng(seed)
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in range(rows):
        label = r % 2
        pixels = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
        pixels[..., 2 * label] += 180
        Image.fromarray(pixels).save(files / f"{name}_{r}.png")
        t = np.arange(CLIP_SAMPLES) / FILE_RATE
        tone = 0.5 * np.sin(2 * np.pi * (300 if label == 0 else 1500) * t) + 0.01 * rng.standard_normal(t.size)
        wavfile.write(files / f"{name}_{r}.wav", FILE_RATE, (tone * 32767).astype(np.int16))
        phrase = PHRASES[label][r // 2 % len(PHRASES[label])]
        lines.append([f"files/{name}_{r}.png", f"files/{name}_{r}.wav", phrase, "neg" if label else "pos"])
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["image", "audio", "text", "label"], *lines])
    return path


def write_recipe(folder: Path, modality: str, encoder: dict, data: dict | None = None, **sections: dict) -> Path:
    """A recipe training ``encoder`` on the toy manifests' ``modality`` column alone, for three quick epochs."""
    if not (folder / "train.csv").is_file():
        write_toy_manifest(folder, "train", 24, seed=0)
        write_toy_manifest(folder, "test", 12, seed=1)
    recipe = {
        "data": {
            "name": "manifest",
            "train": str(folder / "train.csv"),
            "test": str(folder / "test.csv"),
            "target": "label",
            "modalities": {modality: modality},
            "batch_size": 8,
            **(data or {}),
        },
        "model": {"encoders": {modality: encoder}, "head": {"name": "linear"}},
        "trainer": {"epochs": 4, "progress": False, "optimizer": {"name": "adamw", "lr": 0.03}, **sections},
    }
    path = folder / f"{modality}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture
def toy_recipe(tmp_path: Path) -> Callable[..., Path]:
    """``toy_recipe(modality, encoder, data=None)``: a recipe file over toy manifests in ``tmp_path``."""
    return lambda *args, **kwargs: write_recipe(tmp_path, *args, **kwargs)


@pytest.fixture
def accuracy() -> Callable[[Path], float]:
    """``accuracy(run)``: the test accuracy a finished run reports."""
    return lambda run: float(json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"]["accuracy"])
