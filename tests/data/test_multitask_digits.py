"""The multitask digit data: task selection, target packing and disjoint number splits."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from polymodal.config import load_config
from polymodal.data.multitask_digits import (
    CLASS_NAMES,
    DIGIT_WORDS,
    MNIST_TEST,
    MNIST_TRAIN,
    MNIST_VAL,
    NUMBER_TRAIN,
    OUTPUT_LENGTH,
    PARSE_TRAIN,
    TASKS,
    class_offsets,
    multitask_digit_splits,
    number_phrases,
)
from polymodal.errors import ConfigError
from polymodal.modalities.audio import AudioConfig
from polymodal.modalities.image import ImageConfig
from polymodal.modalities.text import ByteTokenizer, TextConfig

IDS = {t.name: i for i, t in enumerate(TASKS)}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, mnist_writer: Callable[..., Path]) -> Path:
    """A data root whose ``mnist/mnist.npz`` holds a few more digits than the mnist task takes."""
    root = tmp_path_factory.mktemp("digits")
    mnist_writer(root / "mnist" / "mnist.npz", train=MNIST_TRAIN + MNIST_VAL + 10, test=MNIST_TEST + 10)
    return root


def _splits(root, tasks, low_data_examples=None):
    return multitask_digit_splits(
        str(root), ImageConfig(), AudioConfig(), TextConfig(max_length=32), tasks, low_data_examples
    )


def _counts(split):
    return {t.name: int((split.tasks == IDS[t.name]).sum()) for t in TASKS}


def _parse_inputs(split):
    return [
        tuple(split[i]["inputs"]["text"].tolist()) for i in range(len(split)) if int(split.tasks[i]) == IDS["parse"]
    ]


def _decode(target):
    return ByteTokenizer(OUTPUT_LENGTH).decode(target[1:])


def test_number_phrases_drop_the_british_and():
    phrases = number_phrases()
    assert len(phrases) == 1000 and phrases[342] == (342, "three hundred forty-two", "trois cent quarante-deux")


def test_text_tasks_pack_task_and_bytes_and_keep_test_numbers_out_of_training(root):
    train, val, test = _splits(root, ["translate", "parse"])
    counts = {name: int((train.tasks == IDS[name]).sum()) for name in ("translate", "parse")}
    assert counts == {"translate": 700, "parse": PARSE_TRAIN}
    expected = {english: (str(number), french) for number, english, french in number_phrases()}
    seen = {t: set() for t in ("train", "val", "test")}
    for split, data in zip(seen, (train, val, test), strict=True):
        for i in range(len(data)):
            sample = data[i]
            target = sample["target"]
            assert target.shape == (1 + OUTPUT_LENGTH,) and set(sample["inputs"]) == {"text"}
            english = ByteTokenizer(32).decode(sample["inputs"]["text"])
            digits, french = expected[english]
            assert _decode(target) == (digits if int(target[0]) == IDS["parse"] else french)
            seen[split].add(english)
    assert len(seen["test"]) == 200 and not seen["test"] & (seen["train"] | seen["val"])


def test_mnist_targets_use_their_class_range(root):
    train, val, test = _splits(root, ["mnist"])
    assert (len(train), len(val), len(test)) == (MNIST_TRAIN, MNIST_VAL, MNIST_TEST)
    sample = test[0]
    assert sample["inputs"]["image"].shape == (1, 28, 28)
    with np.load(root / "mnist" / "mnist.npz") as mnist:
        digit = int(mnist["y_test"][0])
    assert (
        int(sample["target"][0]) == IDS["mnist"]
        and CLASS_NAMES[int(sample["target"][1])] == f"mnist:{DIGIT_WORDS[digit]}"
    )
    assert class_offsets(TASKS) == {"mnist": 0, "speaker": 10}


@pytest.mark.parametrize("tasks", [["nope"], []])
def test_unknown_or_no_task_is_one_config_error(root, tasks):
    with pytest.raises(ConfigError, match="data.tasks: unknown or no tasks"):
        _splits(root, tasks)


def test_low_data_examples_sets_only_the_parse_training_size(shared_file):
    root = shared_file("fsdd/recordings", "the real FSDD recordings, for the exact counts").parents[1]
    default = _splits(root, None)
    assert _counts(default[0]) == {"mnist": 1000, "asr": 960, "speaker": 960, "translate": 700, "parse": PARSE_TRAIN}
    small = _splits(root, None, 100)
    assert _counts(small[0]) == {**_counts(default[0]), "parse": 100}
    for before, after in zip(default[1:], small[1:], strict=True):  # validation and test: untouched
        assert _counts(after) == _counts(before) and _counts(after)["parse"] in (100, 200)
        assert _parse_inputs(after) == _parse_inputs(before)
    # The first N numbers of one fixed order: a smaller parse set is part of every larger one.
    assert _parse_inputs(small[0]) == _parse_inputs(default[0])[:100]
    assert _counts(_splits(root, ["parse"], NUMBER_TRAIN)[0])["parse"] == NUMBER_TRAIN == 700


def test_low_data_examples_is_a_validated_config_field(root):
    overrides = [f"data.root={root}"]
    assert load_config("multimodel-digits", overrides).data.low_data_examples is None
    assert load_config("multimodel-digits", [*overrides, "data.low_data_examples=50"]).data.low_data_examples == 50
    for bad in (0, 701):
        with pytest.raises(ConfigError, match="low_data_examples"):
            load_config("multimodel-digits", [*overrides, f"data.low_data_examples={bad}"])
    with pytest.raises(ConfigError, match="data.low_data_examples: expected 1 to 700"):
        _splits(root, ["parse"], 701)
