"""The multitask digit data: task selection, target packing and disjoint number splits."""

from pathlib import Path

import pytest

from polymodal.data.multitask_digits import (
    CLASS_NAMES,
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


def _splits(tasks):
    return multitask_digit_splits(ROOT, ImageConfig(), AudioConfig(), TextConfig(max_length=32), tasks)


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
