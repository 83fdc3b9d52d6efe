"""The FSDD split from file names, and the multitask digit tasks on a user's folder or the packaged data."""

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from polymodal.data import avdigits
from polymodal.data.multitask_digits import (
    CLASS_NAMES,
    FSDD_TEST_TAKES,
    FSDD_TRAIN_TAKES,
    FSDD_VAL_TAKES,
    MNIST_TEST,
    MNIST_TRAIN,
    MNIST_VAL,
    OUTPUT_LENGTH,
    SPEAKERS,
    TASKS,
    fsdd_split,
    multitask_digit_splits,
)
from polymodal.errors import DataError
from polymodal.modalities.audio import AudioConfig
from polymodal.modalities.image import ImageConfig
from polymodal.modalities.text import ByteTokenizer, TextConfig

IDS = {t.name: i for i, t in enumerate(TASKS)}


def _splits(root, tasks):
    return multitask_digit_splits(root, ImageConfig(), AudioConfig(), TextConfig(max_length=32), tasks)


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("3_theo_0", ("test", 3, "theo")),
        ("3_theo_4", ("test", 3, "theo")),
        ("7_yweweler_5", ("val", 7, "yweweler")),
        ("7_yweweler_7", ("val", 7, "yweweler")),
        ("0_george_8", ("train", 0, "george")),
        ("0_george_23", ("train", 0, "george")),
        ("0_george_24", None),
        ("9_lucas_49", None),
    ],
)
def test_split_comes_from_the_take_in_the_name(stem, expected):
    assert fsdd_split(stem) == expected


def test_the_documented_test_split_is_takes_0_to_4_and_the_splits_are_disjoint():
    assert list(FSDD_TEST_TAKES) == [0, 1, 2, 3, 4]
    takes = [set(FSDD_TEST_TAKES), set(FSDD_VAL_TAKES), set(FSDD_TRAIN_TAKES)]
    assert not (takes[0] & takes[1] or takes[0] & takes[2] or takes[1] & takes[2])


@pytest.mark.parametrize(
    ("stem", "message"),
    [("3_theo", "not an FSDD recording name"), ("3_alice_0", "unknown FSDD speaker 'alice'")],
)
def test_bad_names_are_one_line_errors(stem, message):
    with pytest.raises(DataError, match=message):
        fsdd_split(stem)


def _write_fsdd(folder: Path, takes: tuple[int, ...]) -> None:
    """Tone recordings named like FSDD's for digits 0-1, speakers george and theo, the given takes."""
    folder.mkdir(parents=True)
    t = np.arange(2000) / 8000.0
    for digit in (0, 1):
        for speaker in ("george", "theo"):
            for take in takes:
                tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * digit + take) * t)
                wavfile.write(folder / f"{digit}_{speaker}_{take}.wav", 8000, (tone * 32767).astype(np.int16))
    (folder / "README.md").write_text("not a recording")


def test_a_users_fsdd_folder_is_split_by_name_without_any_csv(tmp_path: Path):
    _write_fsdd(tmp_path / "fsdd" / "recordings", takes=(0, 4, 5, 8, 30))
    train, val, test = _splits(str(tmp_path), ["asr", "speaker"])
    # Per split: 2 digits x 2 speakers x its takes, each clip once for asr and once for speaker; take 30 is unused.
    assert (len(train), len(val), len(test)) == (2 * 4 * 1, 2 * 4 * 1, 2 * 4 * 2)
    words = {ByteTokenizer(OUTPUT_LENGTH).decode(s["target"][1:]) for s in test if int(s["target"][0]) == IDS["asr"]}
    assert words == {"zero", "one"}
    speakers = {CLASS_NAMES[int(s["target"][1])] for s in train if int(s["target"][0]) == IDS["speaker"]}
    assert speakers == {"speaker:george", "speaker:theo"}
    assert test[0]["inputs"]["audio"].shape == (1, 32, 64)


def test_a_flat_fsdd_folder_also_works_and_an_empty_one_is_one_line(tmp_path: Path):
    _write_fsdd(tmp_path / "flat" / "fsdd", takes=(1,))
    assert len(_splits(str(tmp_path / "flat"), ["speaker"])[2]) == 4
    (tmp_path / "empty" / "fsdd").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no FSDD recordings .*data.root must hold fsdd/"):
        _splits(str(tmp_path / "empty"), ["asr"])


def test_without_root_the_tasks_come_from_the_packaged_data():
    train, val, test = _splits(None, ["mnist", "asr", "speaker"])
    counts = [{t: int((split.tasks == IDS[t]).sum()) for t in ("mnist", "asr", "speaker")} for split in (train, val)]
    # 6 speakers x 10 digits x 16 training takes (8-23) and x 3 validation takes (5-7).
    assert counts == [
        {"mnist": MNIST_TRAIN, "asr": 960, "speaker": 960},
        {"mnist": MNIST_VAL, "asr": 180, "speaker": 180},
    ]
    assert int((test.tasks == IDS["speaker"]).sum()) == 6 * 10 * len(FSDD_TEST_TAKES)
    speakers = {int(s["target"][1]) for s in test if int(s["target"][0]) == IDS["speaker"]}
    assert {CLASS_NAMES[c].removeprefix("speaker:") for c in speakers} == set(SPEAKERS)
    # MNIST test images: the first MNIST_TEST of the avdigits test split, with their labels.
    images, labels = avdigits.digit_images("test")
    first = test[0]
    assert CLASS_NAMES[int(first["target"][1])] == f"mnist:{TASKS[0].classes[int(labels[0])]}"
    assert first["inputs"]["image"].shape == (1, 28, 28) and len(images) >= MNIST_TEST


def test_recording_bank_matches_the_per_split_audio():
    names, mels = avdigits.recording_bank()
    assert len(names) == len(mels) == 3000 and mels.shape[1:] == (1, 32, 64)
    split = avdigits.AVDigits("test")
    arrays, _ = avdigits.load_arrays(None, ("test_audio",))
    r = int(arrays["test_audio"][0])
    np.testing.assert_array_equal(split[0]["inputs"]["audio"].numpy(), mels[r].numpy())
