"""Pretrained contrastive spaces (HF CLIP, CLAP, open_clip) on tiny randomly initialised models saved offline."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.io import wavfile
from scipy.signal import resample_poly
from torch import Tensor
from torch.testing import assert_close

from polymodal.errors import ConfigError, DataError
from polymodal.spaces import pretrained
from polymodal.spaces.pretrained import ClapSpace, HFClipSpace, OpenClipSpace, load_pretrained_space

WORDS = "a photo of dog cat bird car red blue sound loud quiet music".split()
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
TEXTS = ["a photo of a dog", "loud music", "a red car and a blue bird"]
TOKEN_IDS = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
EXTRACTOR_RATE, FILE_RATE = 16_000, 22_050


def _pooled(output) -> Tensor:
    return output if isinstance(output, Tensor) else output.pooler_output


def _save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)


def _tiny_text(**extra) -> dict:
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    return {"vocab_size": len(SPECIAL) + len(WORDS), **layers, **TOKEN_IDS, **extra}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = transformers.CLIPConfig(
        text_config=_tiny_text(max_position_embeddings=16),
        vision_config={**vision, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    transformers.CLIPModel(config).save_pretrained(path)
    _save_tokenizer(path)
    transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory) -> Path:
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("clap")
    torch.manual_seed(0)
    audio = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 4, "patch_stride": 4}
    config = transformers.ClapConfig(
        text_config=_tiny_text(max_position_embeddings=20),
        audio_config={
            **audio,
            "depths": [1, 1],
            "num_attention_heads": [1, 2],
            "patch_embeds_hidden_size": 16,
            "hidden_size": 32,
        },
        projection_dim=16,
    )
    transformers.ClapModel(config).save_pretrained(path)
    _save_tokenizer(path)
    # rand_trunc, as laion/clap-htsat-unfused: clips over max_length_s are cropped at random by the extractor.
    transformers.ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=EXTRACTOR_RATE,
        hop_length=160,
        max_length_s=1,
        fft_window_size=400,
        frequency_max=8000,
        truncation="rand_trunc",
    ).save_pretrained(path)
    return path


@pytest.fixture
def images(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(40, 50), (64, 48)]):
        path = tmp_path / f"image{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def clips(tmp_path) -> list[str]:
    # 16-bit stereo at 22.05 kHz: a short clip (repeat-padded) and one of 1.5 s (cropped to 1 s by the extractor).
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate([0.5, 1.5]):
        path = tmp_path / f"clip{i}.wav"
        samples = int(seconds * FILE_RATE)
        wave = np.sin(2 * np.pi * (300 + 500 * i) * np.arange(samples) / FILE_RATE) + 0.1 * rng.standard_normal(samples)
        stereo = np.stack([wave, 0.5 * wave], axis=1) * 0.5
        wavfile.write(path, FILE_RATE, (stereo * 32767).astype(np.int16))
        paths.append(str(path))
    return paths


def _tokenizer(path: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)


def _check_embeddings(space, modality: str, items: list[str], dim: int = 16) -> Tensor:
    first = space.embed_items(modality, items)
    assert first.shape == (len(items), dim) and first.dtype == torch.float32 and not first.requires_grad
    assert_close(first.norm(dim=-1), torch.ones(len(items)))
    assert torch.equal(space.embed_items(modality, items), first)  # deterministic
    assert (first @ first.T - torch.eye(len(items))).abs().max() < 0.999  # the items embed differently
    return first


def test_hf_clip_space_embeds_images_and_texts_as_the_model_does(clip_dir, images, monkeypatch):
    from transformers import CLIPImageProcessorPil, CLIPModel

    space = load_pretrained_space("hf-clip", clip_dir)
    assert isinstance(space, HFClipSpace) and space.modalities == ["image", "text"]
    image_emb = _check_embeddings(space, "image", images)
    text_emb = _check_embeddings(space, "text", TEXTS)

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    processor = CLIPImageProcessorPil.from_pretrained(clip_dir, local_files_only=True)
    pixels = processor(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")["pixel_values"]
    tokens = _tokenizer(clip_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert_close(image_emb, F.normalize(_pooled(model.get_image_features(pixel_values=pixels)), dim=-1))
        assert_close(text_emb, F.normalize(_pooled(model.get_text_features(**tokens)), dim=-1))
    # embed() takes the preprocessed tensors; batching does not change an embedding.
    assert_close(space.embed("image", pixels), image_emb)
    assert_close(space.embed("text", tokens["input_ids"]), text_emb)
    monkeypatch.setattr(pretrained, "BATCH_SIZE", 2)
    assert_close(space.embed_items("text", TEXTS), text_emb)


def test_clap_space_resamples_audio_files_and_embeds_as_the_model_does(clap_dir, clips, monkeypatch):
    from transformers import ClapFeatureExtractor, ClapModel

    space = load_pretrained_space("clap", clap_dir)
    assert isinstance(space, ClapSpace) and space.modalities == ["audio", "text"]
    audio_emb = _check_embeddings(space, "audio", clips)
    text_emb = _check_embeddings(space, "text", TEXTS)

    model = ClapModel.from_pretrained(clap_dir, local_files_only=True).eval()
    extractor = ClapFeatureExtractor.from_pretrained(clap_dir, local_files_only=True)
    features = []
    for path in clips:
        rate, data = wavfile.read(path)
        mono = (data.astype(np.float64) / 32768).mean(axis=1)
        wave = resample_poly(mono, 320, 441)  # 22050 Hz -> 16000 Hz
        np.random.seed(0)  # the adapter's fixed crop of the long clip
        features.append(extractor(wave, sampling_rate=EXTRACTOR_RATE, return_tensors="pt")["input_features"])
    tokens = _tokenizer(clap_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = F.normalize(_pooled(model.get_audio_features(input_features=torch.cat(features))), dim=-1)
        assert_close(audio_emb, expected, atol=1e-4, rtol=1e-4)  # float32 resampling vs float64 here
        assert_close(text_emb, F.normalize(_pooled(model.get_text_features(**tokens)), dim=-1))
    assert_close(space.embed("audio", torch.cat(features)), expected)
    # Padded batches: the padding is masked (from lengths, or from the pad token), so batching changes nothing.
    assert_close(space.embed("text", tokens["input_ids"]), text_emb)
    assert_close(space.embed("text", tokens["input_ids"], tokens["attention_mask"].sum(1)), text_emb)
    monkeypatch.setattr(pretrained, "BATCH_SIZE", 1)
    assert_close(space.embed_items("text", TEXTS), text_emb)
    assert_close(space.embed_items("audio", clips[1:]), audio_emb[1:])  # a clip embeds alone as in a batch


def test_pretrained_spaces_are_frozen(clip_dir, clap_dir):
    for space in (HFClipSpace(clip_dir), ClapSpace(clap_dir)):
        assert not space.model.training
        assert not any(p.requires_grad for p in space.model.parameters())
        assert all(p.dtype == torch.float32 for p in space.model.parameters())


@pytest.mark.parametrize("kind", ["hf-clip", "clap", "open_clip"])
def test_missing_weights_name_the_path(tmp_path, kind):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match=f"{re.escape(str(missing))}: .*not found"):
        load_pretrained_space(kind, missing, model_name="ViT-B-32")


def test_a_directory_without_weights_is_a_config_error(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(
        ConfigError, match=f"{re.escape(str(tmp_path))}: not a Hugging Face clip model directory"
    ) as err:
        load_pretrained_space("hf-clip", tmp_path)
    assert "no config.json, preprocessor_config.json, model.safetensors" in str(err.value)


def test_a_model_of_the_other_family_is_a_config_error(clap_dir):
    with pytest.raises(ConfigError, match=f"{re.escape(str(clap_dir))}: holds a 'clap' model, not 'clip'"):
        HFClipSpace(clap_dir)


def test_weights_lacking_parameters_are_a_config_error(clip_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(clip_dir, partial)
    state = load_file(partial / "model.safetensors")
    del state["visual_projection.weight"]
    save_file(state, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=f"{re.escape(str(partial))}: the weights lack 1 parameters"):
        HFClipSpace(partial)


def test_unknown_kind_lists_the_kinds(tmp_path):
    with pytest.raises(ConfigError, match="unknown pretrained space kind 'clip'.*hf-clip, clap, open_clip"):
        load_pretrained_space("clip", tmp_path)
    with pytest.raises(ConfigError, match="model_name"):
        load_pretrained_space("open_clip", tmp_path)


def test_missing_transformers_is_a_config_error(clip_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'polymodal\[pretrained\]'"):
        HFClipSpace(clip_dir)


def test_unreadable_files_are_data_errors_naming_them(clip_dir, clap_dir, images, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=f"{re.escape(str(corrupt))}: not a readable image"):
        HFClipSpace(clip_dir).embed_items("image", [images[0], str(corrupt)])
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF garbage")
    with pytest.raises(DataError, match=re.escape(str(noise))):
        ClapSpace(clap_dir).embed_items("audio", [str(noise)])


def test_missing_open_clip_is_a_clear_config_error(tmp_path, monkeypatch):
    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    checkpoint.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ConfigError, match=r"open_clip.*torchvision.*polymodal\[open-clip\].*HFClipSpace") as err:
        load_pretrained_space("open_clip", checkpoint, model_name="ViT-B-32")
    assert "\n" not in str(err.value)


def test_open_clip_space_embeds_as_the_model_does(tmp_path, images):
    open_clip = pytest.importorskip("open_clip")
    tiny = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    config = tmp_path / "polymodal-tiny-clip.json"
    config.write_text(json.dumps(tiny))
    open_clip.add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms("polymodal-tiny-clip")
    checkpoint = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)

    space = OpenClipSpace("polymodal-tiny-clip", checkpoint)
    assert space.modalities == ["image", "text"]
    image_emb = _check_embeddings(space, "image", images)
    text_emb = _check_embeddings(space, "text", TEXTS)
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in images])
        assert_close(image_emb, F.normalize(model.encode_image(pixels), dim=-1))
        tokens = open_clip.get_tokenizer("polymodal-tiny-clip")(TEXTS)
        assert_close(text_emb, F.normalize(model.encode_text(tokens), dim=-1))
    assert not any(p.requires_grad for p in space.model.parameters())


def test_open_clip_space_wiring_with_a_stand_in_package(tmp_path, images, monkeypatch):
    # open_clip cannot import here (its torchvision does not load beside this torch build), so a stand-in module
    # with open_clip's API checks the adapter's side: the absolute checkpoint path, the transform and tokenizer,
    # frozen float32 weights, normalised outputs in batches. The real package is tested above where it imports.
    import types

    calls = {}

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = torch.nn.Linear(3, 4)
            self.text = torch.nn.Embedding(10, 4)

        def encode_image(self, x: Tensor) -> Tensor:
            return self.image(x.mean(dim=(2, 3)))

        def encode_text(self, tokens: Tensor) -> Tensor:
            return self.text(tokens).sum(dim=1)

    model = Tiny().double()

    def create_model_and_transforms(name, pretrained=None, device=None):
        calls["args"] = (name, pretrained)
        return (
            model,
            None,
            lambda image: torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[:, :8, :8],
        )

    fake = types.SimpleNamespace(
        create_model_and_transforms=create_model_and_transforms,
        get_tokenizer=lambda name: lambda texts: torch.tensor([[len(t) % 10, 1] for t in texts]),
    )
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    checkpoint = tmp_path / "ckpt.bin"
    checkpoint.write_bytes(b"x")
    monkeypatch.setattr(pretrained, "BATCH_SIZE", 1)
    space = load_pretrained_space("open_clip", checkpoint, model_name="tiny")
    assert calls["args"] == ("tiny", str(checkpoint.resolve()))
    assert not space.model.training and not any(p.requires_grad for p in space.model.parameters())
    text = space.embed_items("text", TEXTS)
    reference = F.normalize(model.float().encode_text(torch.tensor([[len(t) % 10, 1] for t in TEXTS])), dim=-1)
    assert_close(text, reference)
    image = space.embed_items("image", images)
    assert image.shape == (2, 4) and image.dtype == torch.float32
    assert_close(image.norm(dim=-1), torch.ones(2))


@pytest.mark.e2e
def test_bridge_links_two_pretrained_spaces_over_a_manifest(clip_dir, clap_dir, digit_manifest, tmp_path, capsys):
    # Ex-MCR between a tiny HF CLIP (base, image-text) and a tiny CLAP (leaf, audio-text): both embed the manifest's
    # raw files and strings with their own preprocessing; only the projector trains.
    from polymodal.cli import main

    digit_manifest("train.csv", rows=60)
    digit_manifest("test.csv", rows=20, offset=60)
    recipe = tmp_path / "bridge.yaml"
    recipe.write_text(
        f"""
data: {{name: manifest, train: {tmp_path / "train.csv"}, test: {tmp_path / "test.csv"}, batch_size: 16}}
spaces:
  base: {{pretrained: hf-clip, path: {clip_dir}}}
  leaf: {{pretrained: clap, path: {clap_dir}}}
model: {{name: exmcr, options: {{hidden: 16}}}}
strategy: {{name: bridge}}
trainer: {{epochs: 2, selection_metric: loss, progress: false}}
"""
    )
    out = tmp_path / "RUN"
    assert main(["bridge", str(recipe), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["base_unchanged"] is True and metrics["spaces"] == {"base": None, "leaf": None}
    assert metrics["banks"]["train"]["leaf/audio"] > 0
    wav = str(tmp_path / "files" / "test_60.wav")
    capsys.readouterr()
    assert main(["retrieve", str(out), "--from", "audio", "--to", "image", wav, "--top-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2
    # The unified space of an Ex-MCR bridge is the base space: images embed exactly as the base CLIP embeds them.
    image = str(tmp_path / "files" / "test_61.png")
    assert main(["embed", str(out), "--modality", "image", image, "--out", str(tmp_path / "i.npy")]) == 0
    expected = HFClipSpace(clip_dir).embed_items("image", [image]).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), expected)
