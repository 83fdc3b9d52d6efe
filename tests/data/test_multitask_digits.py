"""The multitask digit data: task selection, target packing and disjoint number splits."""

from pathlib import Path

import pytest

from polymodal.config import load_config
from polymodal.data.multitask_digits import (
    CLASS_NAMES,
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

# The shared data folder sits beside the repository (as in CI).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

ROOT = str(SHARED_DATA)
IDS = {t.name: i for i, t in enumerate(TASKS)}


def _splits(tasks, low_data_examples=None):
    return multitask_digit_splits(
        ROOT, ImageConfig(), AudioConfig(), TextConfig(max_length=32), tasks, low_data_examples
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


def test_text_tasks_pack_task_and_bytes_and_keep_test_numbers_out_of_training():
    train, val, test = _splits(["translate", "parse"])
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


def test_mnist_targets_use_their_class_range():
    train, _, test = _splits(["mnist"])
    assert len(train) == 1000 and len(test) == 500
    sample = test[0]
    assert sample["inputs"]["image"].shape == (1, 28, 28)
    assert int(sample["target"][0]) == IDS["mnist"] and CLASS_NAMES[int(sample["target"][1])] == "mnist:seven"
    assert class_offsets() == {"mnist": 0, "speaker": 10}


@pytest.mark.parametrize("tasks", [["nope"], []])
def test_unknown_or_no_task_is_one_config_error(tasks):
    with pytest.raises(ConfigError, match="data.tasks: unknown or no tasks"):
        _splits(tasks)


def test_low_data_examples_sets_only_the_parse_training_size():
    default = _splits(None)
    assert _counts(default[0]) == {"mnist": 1000, "asr": 960, "speaker": 960, "translate": 700, "parse": PARSE_TRAIN}
    small = _splits(None, 100)
    assert _counts(small[0]) == {**_counts(default[0]), "parse": 100}
    for before, after in zip(default[1:], small[1:], strict=True):  # validation and test: untouched
        assert _counts(after) == _counts(before) and _counts(after)["parse"] in (100, 200)
        assert _parse_inputs(after) == _parse_inputs(before)
    # The first N numbers of one fixed order: a smaller parse set is part of every larger one.
    assert _parse_inputs(small[0]) == _parse_inputs(default[0])[:100]
    assert _counts(_splits(["parse"], NUMBER_TRAIN)[0])["parse"] == NUMBER_TRAIN == 700


def test_low_data_examples_is_a_validated_config_field():
    overrides = [f"data.root={ROOT}"]
    assert load_config("multimodel-digits", overrides).data.low_data_examples is None
    assert load_config("multimodel-digits", [*overrides, "data.low_data_examples=50"]).data.low_data_examples == 50
    for bad in (0, 701):
        with pytest.raises(ConfigError, match="low_data_examples"):
            load_config("multimodel-digits", [*overrides, f"data.low_data_examples={bad}"])
    with pytest.raises(ConfigError, match="data.low_data_examples: expected 1 to 700"):
        _splits(["parse"], 701)
