"""The ``hf`` encoder: tiny random-initialised BERT, ViT and wav2vec2 models as encoders of short runs; its errors."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from polymodal.cli import main
from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models import ENCODERS
from polymodal.strategies import STRATEGIES
from polymodal.training.setup import build_optimizer

pytest.importorskip("transformers")

TINY_BERT = {"model_type": "bert", "vocab_size": 16, "max_position_embeddings": 16}
LAYERS = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


def build(modality: str, input_shape: tuple[int, ...], **spec: object) -> torch.nn.Module:
    return ENCODERS.build(ENCODERS.validate({"name": "hf", **spec}, "e"), input_shape=input_shape, kind=modality)


def train(recipe: Path, *overrides: str) -> Path:
    out = recipe.parent / "run"
    assert main(["train", str(recipe), *overrides, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("freeze", [True, False])
def test_text_model_with_its_tokenizer_learns(bert_dir, toy_recipe, accuracy, freeze, capsys):
    encoder = {"name": "hf", "path": str(bert_dir), "freeze": freeze}
    run = train(toy_recipe("text", encoder, {"text": {"tokenizer": str(bert_dir), "max_length": 8}}))
    assert accuracy(run) >= 0.75
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0  # the saved run rebuilds the encoder and loads its weights
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] == accuracy(run)


@pytest.mark.parametrize("freeze", [True, False])
def test_image_model_with_its_processor_settings_learns(vit_dir, toy_recipe, accuracy, freeze):
    encoder = {"name": "hf", "path": str(vit_dir), "freeze": freeze}
    run = train(toy_recipe("image", encoder, {"image": {"processor": str(vit_dir)}}))
    assert accuracy(run) >= 0.75
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["shapes"]["image"] == [3, 16, 16]


@pytest.mark.parametrize("freeze", [True, False])
def test_audio_model_on_raw_waveforms_learns(wav2vec2_dir, toy_recipe, accuracy, freeze):
    encoder = {"name": "hf", "path": str(wav2vec2_dir), "freeze": freeze}
    audio = {"processor": str(wav2vec2_dir), "hop_length": 160, "max_frames": 10}
    run = train(toy_recipe("audio", encoder, {"audio": audio}))
    assert accuracy(run) >= 0.75
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["data"]["audio"]
    assert (config["features"], config["sample_rate"], config["normalize"]) == ("waveform", 16000, True)


def test_frozen_model_keeps_eval_mode_and_trains_no_weight(vit_dir):
    encoder = build("image", (3, 16, 16), path=str(vit_dir), freeze=True, out_dim=4)
    encoder.train()
    assert not encoder.model.training and encoder.proj.training
    assert [n for n, p in encoder.named_parameters() if p.requires_grad] == ["proj.weight", "proj.bias"]
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(encoder(x), encoder(x))  # no dropout


def test_freeze_n_trains_the_last_n_layers_and_what_follows(vit_dir):
    encoder = build("image", (3, 16, 16), path=str(vit_dir), freeze=1, pooling="pooler")
    trained = {n.split(".")[1] + "." + n.split(".")[2] for n, p in encoder.named_parameters() if p.requires_grad}
    assert trained == {"layers.1", "layernorm.weight", "layernorm.bias", "pooler.dense"}
    assert encoder(torch.randn(2, 3, 16, 16)).shape == (2, 16)
    with pytest.raises(ConfigError, match="freeze=3 but the model has 2 layers"):
        build("image", (3, 16, 16), path=str(vit_dir), freeze=3)


def test_text_pooling_ignores_padding(bert_dir):
    encoder = build("text", (), path=str(bert_dir)).eval()
    ids = torch.tensor([[2, 7, 11, 3, 0, 0]])
    padded = torch.cat([ids[:, :4], torch.full((1, 2), 9)], dim=1)  # other tokens past the length
    torch.testing.assert_close(encoder(ids, torch.tensor([4])), encoder(padded, torch.tensor([4])))
    assert encoder(ids, torch.tensor([4])).shape == (1, 16)


def test_lr_scale_gives_the_encoder_its_own_learning_rate():
    from polymodal.models import build_model

    class Cfg:
        name, options, unimodal_head, predictor = "multimodal", {}, None, None
        encoders = {"text": ENCODERS.validate({"name": "hf", "config": {**TINY_BERT, **LAYERS}, "lr_scale": 0.1}, "e")}
        fusion, head = {"name": "concat"}, {"name": "linear"}

    model = build_model(Cfg, {"text": ()}, out_dim=2)
    strategy = STRATEGIES.build({"name": "joint"}, model=model, data=DataSpec("classification"))

    class Optim:
        name, lr, weight_decay = "adamw", 0.01, 0.0

    groups = build_optimizer(strategy.param_groups(), Optim).param_groups
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.001)]
    head = {id(p) for p in model.head.parameters()}
    assert head <= {id(p) for p in groups[0]["params"]}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.encoders["text"].parameters()}


def test_random_init_from_a_config():
    encoder = build("text", (), config={**TINY_BERT, **LAYERS}, out_dim=8)
    assert encoder.out_dim == 8
    assert encoder(torch.randint(0, 16, (3, 5)), torch.tensor([5, 2, 0])).shape == (3, 8)


def test_missing_directory_and_files(tmp_path, bert_dir):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing))}: text model not found$"):
        build("text", (), path=str(missing))
    partial = tmp_path / "partial"
    shutil.copytree(bert_dir, partial)
    (partial / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"not a Hugging Face text model directory: no model.safetensors"):
        build("text", (), path=str(partial))


def test_unknown_architecture(tmp_path, bert_dir):
    odd = tmp_path / "odd"
    shutil.copytree(bert_dir, odd)
    (odd / "config.json").write_text(json.dumps({"model_type": "no-such-model"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(odd))}: cannot load the text model .*no-such-model"):
        build("text", (), path=str(odd))
    with pytest.raises(ConfigError, match=r"model.encoders.text.config: cannot build a 'no-such-model' model"):
        build("text", (), config={"model_type": "no-such-model"})


def test_a_model_of_another_modality(bert_dir, wav2vec2_dir):
    with pytest.raises(ConfigError, match=f"^{re.escape(str(bert_dir))}: a 'bert' model encodes text, not audio$"):
        build("audio", (1, 1600), path=str(bert_dir))
    with pytest.raises(ConfigError, match="a 'wav2vec2' model encodes audio, not image"):
        build("image", (3, 16, 16), path=str(wav2vec2_dir))


def test_inputs_the_model_cannot_take(vit_dir, wav2vec2_dir, bert_dir):
    with pytest.raises(ConfigError, match=r"takes 3x16x16 images but the data gives 1x28x28 \(set data.image.proc"):
        build("image", (1, 28, 28), path=str(vit_dir))
    with pytest.raises(ConfigError, match="takes raw waveforms: set data.audio.features=waveform"):
        build("audio", (1, 32, 64), path=str(wav2vec2_dir))
    with pytest.raises(ConfigError, match="the 'wav2vec2' model has no pooler"):
        build("audio", (1, 1600), path=str(wav2vec2_dir), pooling="pooler")
    with pytest.raises(ConfigError, match="the hf encoder takes image, audio, text inputs"):
        build("features", (5,), path=str(bert_dir))


def test_spec_errors_are_one_line():
    with pytest.raises(ConfigError, match="give exactly one of path"):
        ENCODERS.validate({"name": "hf"}, "model.encoders.text")
    with pytest.raises(ConfigError, match="model.encoders.text.config: cannot build|needs a model_type"):
        build("text", (), config={"hidden_size": 16})
    with pytest.raises(ConfigError, match="freeze"):
        ENCODERS.validate({"name": "hf", "path": "x", "freeze": 0}, "model.encoders.text")


def test_missing_transformers(bert_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` raise ImportError
    with pytest.raises(ConfigError, match=r"needs transformers: pip install 'polymodal\[pretrained\]'"):
        build("text", (), path=str(bert_dir))


@pytest.mark.parametrize(
    "strategy",
    [
        ["strategy.name=alternating", "model.fusion={name: late}"],
        ["strategy.name=unimodal"],
        ["strategy.name=contrastive", "model.options.projection_dim=8", "trainer.selection_metric=r1"],
    ],
    ids=lambda overrides: overrides[0].split("=")[1],
)
def test_hf_encoders_in_other_strategies(bert_dir, vit_dir, toy_recipe, strategy):
    text = {"name": "hf", "path": str(bert_dir), "freeze": 1, "lr_scale": 0.5, "out_dim": 8}
    recipe = toy_recipe("text", text, {"text": {"tokenizer": str(bert_dir)}, "image": {"processor": str(vit_dir)}})
    image = f"model.encoders.image={{name: hf, path: {vit_dir}, out_dim: 8}}"
    both = "data.modalities={image: image, text: text}"
    run = train(recipe, both, image, "trainer.epochs=1", *strategy)
    assert (run / "metrics.json").is_file()


def test_the_manifest_hf_recipe_runs_on_local_model_directories(bert_dir, vit_dir, wav2vec2_dir, toy_recipe):
    folder = toy_recipe("text", {"name": "lenet"}).parent  # writes the toy manifests
    paths = [
        f"model.encoders.text.path={bert_dir}",
        f"data.text.tokenizer={bert_dir}",
        f"model.encoders.image.path={vit_dir}",
        f"data.image={{processor: {vit_dir}}}",
        f"model.encoders.audio.path={wav2vec2_dir}",
    ]
    data = [f"data.train={folder / 'train.csv'}", f"data.test={folder / 'test.csv'}", "data.target=label"]
    argv = ["train", "manifest-hf", *data, *paths, "trainer.epochs=1", "trainer.progress=false"]
    assert main([*argv, "--out", str(folder / "run")]) == 0
    config = yaml.safe_load((folder / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert config["data"]["image"]["size"] == 16 and config["data"]["audio"]["features"] == "waveform"
