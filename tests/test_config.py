"""Config validation checks the declared contracts: a strategy's needs against the model, the data and the trainer,
and settings that the chosen dataset or architecture would ignore; each refusal is one line naming both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from polymodal.cli import main
from polymodal.config import check_data, data_config, dump_config, load_config, validate_config
from polymodal.data.spec import DataSpec, TaskSpec
from polymodal.errors import ConfigError
from polymodal.recipe_files import read_yaml


def refusal(recipe: str, *overrides: str) -> str:
    """The one-line error of validating a bundled recipe with overrides, without its file prefix."""
    with pytest.raises(ConfigError) as caught:
        load_config(recipe, list(overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message.partition(" with overrides: ")[2]


def test_a_strategy_needing_what_the_fusion_lacks_is_refused_naming_both():
    assert refusal("avmnist-mla", "model.fusion={name: concat}") == (
        "strategy.name: alternating needs a fusion that scores each modality through the shared head "
        "(model.fusion.name: late), not model.fusion.name=concat"
    )


def test_a_strategy_needing_another_architecture_is_refused():
    assert refusal("momo-digits", "strategy={name: joint}") == (
        "strategy.name: joint needs one fused output per sample (model.name: multimodal), not model.name=momo"
    )
    assert refusal("avdigits-joint", "strategy={name: staged}").startswith(
        "strategy.name: staged needs an image-text stream with patch, token and matching heads (model.name: momo)"
    )


def test_a_need_that_comes_from_a_strategy_option_names_that_option():
    assert refusal("selfmi-digits", "model.predictor=null") == (
        "strategy.cpc: self_mi needs a predictor of each modality's feature from the fused one "
        "(model.predictor: a head), not model.predictor=null"
    )
    assert refusal("exmcr-digits", "model={name: cmcr}", "strategy.weights={audio: {text: 2.0}}") == (
        "strategy.weights: bridge needs Ex-MCR's leaf-to-base projector (model.name: exmcr), not model.name=cmcr"
    )


def refuses(recipe: str, *overrides: str) -> bool:
    try:
        load_config(recipe, list(overrides))
    except ConfigError:
        return True
    return False


def test_options_that_drop_a_need_make_the_config_valid():
    assert not refuses("selfmi-digits", "model.predictor=null", "strategy.cpc=false")
    assert refuses("selfmi-digits", "model.predictor=null")


def test_the_task_kind_is_checked():
    assert refusal("selfmi-digits", "data.task=classification") == (
        "strategy.name: self_mi needs data.task: regression, not classification"
    )


def test_stages_longer_than_the_run_are_refused_and_a_longer_run_continues_the_last_stage():
    assert refusal("momo-digits", "trainer.epochs=1") == (
        "strategy.stages: staged runs 12 epochs (2 + 2 + 8), more than trainer.epochs=1; "
        "set trainer.epochs=12 or shorten strategy.stages"
    )
    assert not refuses("momo-digits", "trainer.epochs=12")
    assert not refuses("momo-digits", "trainer.epochs=13")
    one = "strategy.stages=[{data: [image, text, pair], objectives: [mpm, mlm, itc, itm], epochs: 1}]"
    assert not refuses("momo-digits", one, "trainer.epochs=1")


def test_representation_needs_a_strategy_that_has_it():
    assert refusal("avdigits-joint", "eval.representation=true") == (
        "eval.representation: strategy 'joint' has no frozen-feature evaluation (embed, match)"
    )


def test_multimodal_parts_given_to_another_architecture_are_refused():
    assert refusal("momo-digits", "model.fusion={name: late}") == (
        "model.fusion: not used by the 'momo' architecture (only multimodal has one)"
    )
    assert refusal("multimodel-digits", "model.head={name: linear}").startswith("model.head: not used by")
    assert refusal("multimodel-digits", "model.unimodal_head={name: linear}").startswith("model.unimodal_head: not")


def test_a_resolved_config_validates_again(tmp_path: Path):
    for recipe in ("momo-digits", "multimodel-digits", "avmnist-mla", "selfmi-digits"):
        (tmp_path / "config.yaml").write_text(dump_config(load_config(recipe)), encoding="utf-8")
        validate_config(read_yaml(tmp_path / "config.yaml"), "config.yaml")


def test_a_dataset_only_setting_is_refused_for_a_dataset_that_does_not_read_it():
    assert refusal("avdigits-joint", "data.fold=2") == "data.fold: not read by data.name=avdigits (only by mosi)"
    assert refusal("avdigits-joint", "data.tasks=[parse]").startswith("data.tasks: not read by data.name=avdigits")
    assert refusal("manifest-joint", "data.root=somewhere").startswith("data.root: not read by data.name=manifest")
    assert not refuses("selfmi-mosi", "data.root=mosi", "data.fold=2")
    assert not refuses("avdigits-joint", "data.fold=0")  # the default: nothing is given
    with pytest.raises(ConfigError, match="^data.trust_pickle: not read by data.name=avdigits"):
        data_config(["trust_pickle=true"])


def test_an_unknown_selection_metric_is_refused_listing_the_known_ones():
    message = refusal("avdigits-joint", "trainer.selection_metric=accuracyy")
    assert message.startswith("trainer.selection_metric: unknown metric 'accuracyy' (known: loss, accuracy, macro_f1,")
    assert not refuses("avdigits-joint", "trainer.selection_metric=image_alone_accuracy")


def test_the_cli_refuses_an_unsupported_pair_in_one_line_before_writing(capsys, tmp_path: Path):
    out = tmp_path / "run"
    assert main(["train", "avmnist-mla", "model.fusion={name: tensor}", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "strategy.name: alternating needs a fusion" in lines[0]
    assert not out.exists()


TABLE = (TaskSpec("shape", "image", "class", ("a", "b")), TaskSpec("echo", "text", "text"))


@pytest.mark.parametrize(
    "recipe,overrides,data,message",
    [
        (
            "avdigits-joint",
            [],
            DataSpec("classification", ("image",), ("a", "b"), TABLE),
            "strategy.name: joint trains one target per sample, not the several tasks of data.name=avdigits",
        ),
        (
            "multimodel-digits",
            [],
            DataSpec("classification", ("image", "text"), ("a", "b")),
            "strategy.name: multitask needs data whose samples belong to several tasks, not data.name=multitask-digits",
        ),
        (
            "avdigits-unimodal",
            ["strategy.modality=audio"],
            DataSpec("classification", ("image", "text")),
            "strategy.modality: unimodal needs the audio input, not in data.name=avdigits (it has: image, text)",
        ),
        (
            "exmcr-image-text",
            [],
            DataSpec("classification", ("image",)),
            "strategy.name: contrastive needs at least 2 input modalities, not data.name=avdigits (image)",
        ),
        (
            "momo-digits",
            [],
            DataSpec("classification", ("image", "audio")),
            "strategy.name: staged needs the text input, not in data.name=digit-captions (it has: image, audio)",
        ),
        (
            "multimodel-digits",
            ["model.options.max_tasks=1"],
            DataSpec("classification", ("image", "text"), ("a", "b"), TABLE),
            "model.options.max_tasks: 1, but the data has 2 tasks",
        ),
        (
            "multimodel-digits",
            [],
            DataSpec("classification", ("features",), ("a", "b"), (TaskSpec("f", "features", "text"),)),
            "model.name: multimodel reads image, audio, text inputs, not features",
        ),
    ],
)
def test_the_config_is_checked_against_the_data_description(recipe, overrides, data, message):
    config = load_config(recipe, overrides)
    with pytest.raises(ConfigError) as caught:
        check_data(config, data)
    assert str(caught.value) == message
