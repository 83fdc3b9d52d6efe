"""Five digit tasks across modalities for multi-task training (MultiModel, arXiv 1706.05137).

| task        | input  | output                   | train | source                                   |
|-------------|--------|--------------------------|-------|------------------------------------------|
| `mnist`     | image  | digit class              | 1000  | MNIST                                    |
| `asr`       | audio  | the spoken word as text  | 960   | FSDD (official train split, takes 8-23)  |
| `speaker`   | audio  | speaker class (6)        | 960   | FSDD, the same clips                     |
| `translate` | text   | French number words      | 700   | 0-999 in English words -> French words   |
| `parse`     | text   | digit string             | 300*  | 0-999 in English words -> "342"          |

``parse`` is the deliberately low-data task, as parsing was in the paper. (*) ``data.low_data_examples`` sets its
training size (1 to 700, default :data:`PARSE_TRAIN`): the first N numbers of the fixed training order, so a smaller
set is part of every larger one; the other tasks and every validation and test split stay as they are. Number
phrases come from ``assets/number_phrases.tsv`` (built by ``scripts/build_number_phrases.py`` with num2words). The
numbers are split once (test 200, validation 100, the rest for training), the same for ``translate`` and ``parse``,
so no test number is ever seen in training by either task. FSDD's split comes from its file names,
``{digit}_{speaker}_{take}.wav``: test is FSDD's documented test split, takes 0-4 of every digit and speaker;
validation is takes 5-7 of its train split and training takes 8-23. The large tasks are cut to about a thousand
examples each so a joint run fits a few CPU minutes.

Two sources give the images and recordings. Without ``root`` they come from the packaged avdigits file (its MNIST
images and its log-mels of all 3000 FSDD recordings): training, validation and test images are the first 1000, 300
and 500 of its train, val and test splits. With ``root``, the user's copies: ``root/mnist/mnist.npz`` (Keras
layout; validation the 300 training images after the first 1000, test the first 500 test images) and
``root/fsdd/recordings/*.wav`` (a clone of the FSDD repository), decoded with the run's audio settings.

A sample is ``{"inputs": {modality: tensor}, "target": LongTensor(1 + OUTPUT_LENGTH), "index": i}``: ``target[0]``
is the task id and ``target[1:]`` the output, either the class index (global over :data:`CLASS_NAMES`, each class
task owning a range) followed by zeros, or the output bytes (ids of :class:`ByteTokenizer`) followed by 0, which ends
the text and pads it.
"""

from __future__ import annotations

import csv
import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from polymodal.data import avdigits
from polymodal.data.mnist import read_mnist
from polymodal.data.spec import TaskSpec, class_offsets
from polymodal.errors import ConfigError, DataError
from polymodal.modalities.audio import AudioAdapter, AudioConfig
from polymodal.modalities.image import ImageAdapter, ImageConfig
from polymodal.modalities.text import ByteTokenizer, TextAdapter, TextConfig

OUTPUT_LENGTH = 36  # bytes of the longest output (33, French number words) plus the end byte, rounded up
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
MNIST_TRAIN, MNIST_VAL, MNIST_TEST = 1000, 300, 500
NUMBER_TEST, NUMBER_VAL, PARSE_TRAIN = 200, 100, 300
NUMBER_TRAIN = 1000 - NUMBER_TEST - NUMBER_VAL  # 700: translate's training numbers, the most parse can have
# FSDD's documented test split is takes 0-4 of every digit and speaker; validation is carved from its train split.
FSDD_TEST_TAKES, FSDD_VAL_TAKES, FSDD_TRAIN_TAKES = range(0, 5), range(5, 8), range(8, 24)
FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)$")  # the stem of an FSDD file: {digit}_{speaker}_{take}


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("mnist", "image", "class", DIGIT_WORDS),
    TaskSpec("asr", "audio", "text"),
    TaskSpec("speaker", "audio", "class", SPEAKERS),
    TaskSpec("translate", "text", "text"),
    TaskSpec("parse", "text", "text"),
)
LOW_DATA_TASKS = ("parse",)


CLASS_NAMES = [f"{t.name}:{c}" for t in TASKS for c in t.classes]


def number_phrases() -> list[tuple[int, str, str]]:
    """(number, English words, French words) for 0-999, from the bundled TSV."""
    text = (resources.files("polymodal") / "data" / "assets" / "number_phrases.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    return [(int(r["number"]), r["en"], r["fr"]) for r in rows]


def _text_target(task_id: int, text: str) -> Tensor:
    tokens = ByteTokenizer(OUTPUT_LENGTH - 1).encode(text)
    target = torch.zeros(1 + OUTPUT_LENGTH, dtype=torch.long)
    target[0] = task_id
    target[1 : 1 + len(tokens)] = tokens
    return target


def _class_target(task_id: int, index: int) -> Tensor:
    target = torch.zeros(1 + OUTPUT_LENGTH, dtype=torch.long)
    target[0], target[1] = task_id, index
    return target


def fsdd_split(stem: str) -> tuple[str, int, str] | None:
    """(split, digit, speaker) of an FSDD recording from its file stem, or None for a take no split uses.

    Raises:
        DataError: a stem that is not ``{digit}_{speaker}_{take}`` or names a speaker the speaker task lacks.
    """
    match = FSDD_NAME.match(stem)
    if match is None:
        raise DataError(f"{stem}: not an FSDD recording name ({{digit}}_{{speaker}}_{{take}})")
    digit, speaker, take = int(match[1]), match[2], int(match[3])
    if speaker not in SPEAKERS:
        raise DataError(f"{stem}: unknown FSDD speaker {speaker!r} (the speaker task knows {', '.join(SPEAKERS)})")
    takes = {"test": FSDD_TEST_TAKES, "val": FSDD_VAL_TAKES, "train": FSDD_TRAIN_TAKES}
    split = next((name for name, chosen in takes.items() if take in chosen), None)
    return None if split is None else (split, digit, speaker)


def _fsdd_files(root: str) -> list[Path]:
    folder = Path(root) / "fsdd"
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    files = sorted(p for p in recordings.glob("*.wav") if FSDD_NAME.match(p.stem))
    if not files:
        raise DataError(
            f"{recordings}: no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav); data.root must hold fsdd/"
        )
    return files


@functools.lru_cache(maxsize=2)
def _fsdd(root: str | None, audio_json: str) -> list[tuple[str, int, str, Tensor]]:
    """(split, digit, speaker, log-mel (1, F, T)) of every used FSDD take (cached: runs in one process share).

    ``root`` None reads the packaged avdigits recordings, else the WAV files under ``root/fsdd``.
    """
    audio = AudioConfig.model_validate_json(audio_json)
    if root is None:
        names, mels = avdigits.recording_bank(None, audio)
        clips = [(fsdd_split(name), mel) for name, mel in zip(names, mels, strict=True)]
    else:
        adapter = AudioAdapter(audio)
        labelled = [(path, fsdd_split(path.stem)) for path in _fsdd_files(root)]
        clips = [(label, adapter.from_file(path)) for path, label in labelled if label is not None]
    return [(*label, mel) for label, mel in clips if label is not None]


def _mnist(root: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images and digits of each split: the packaged avdigits images (``root`` None) or ``root/mnist/mnist.npz``."""
    if root is None:
        return {
            split: (images[:n], digits[:n])
            for split, n in (("train", MNIST_TRAIN), ("val", MNIST_VAL), ("test", MNIST_TEST))
            for images, digits in [avdigits.digit_images(split)]
        }
    mnist = read_mnist(Path(root) / "mnist" / "mnist.npz")
    return {
        "train": (mnist["x_train"][:MNIST_TRAIN], mnist["y_train"][:MNIST_TRAIN]),
        "val": (mnist["x_train"][MNIST_TRAIN : MNIST_TRAIN + MNIST_VAL], mnist["y_train"][MNIST_TRAIN:][:MNIST_VAL]),
        "test": (mnist["x_test"][:MNIST_TEST], mnist["y_test"][:MNIST_TEST]),
    }


class MultitaskDigits(Dataset):
    """One split of the five tasks, concatenated task by task.

    Args:
        samples: (task id, modality, input tensor, target) per sample.
    """

    modalities = ("image", "audio", "text")
    class_names = CLASS_NAMES

    def __init__(self, samples: list[tuple[int, str, Tensor, Tensor]]) -> None:
        self.samples = samples
        self.tasks = torch.tensor([s[0] for s in samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        _, modality, x, target = self.samples[index]
        return {"inputs": {modality: x}, "target": target, "index": index}


def multitask_digit_splits(
    root: str | None,
    image: ImageConfig,
    audio: AudioConfig,
    text: TextConfig,
    tasks: list[str] | None = None,
    low_data_examples: int | None = None,
) -> tuple[MultitaskDigits, MultitaskDigits, MultitaskDigits]:
    """Builds train, validation and test splits.

    Args:
        root: a folder holding ``mnist/mnist.npz`` and ``fsdd/recordings/``; None uses the packaged avdigits data.
        image: image adapter settings.
        audio: audio adapter settings.
        text: text adapter settings (inputs; outputs are bytes up to ``OUTPUT_LENGTH``).
        tasks: names of the tasks to build (default all); task ids stay those of :data:`TASKS`.
        low_data_examples: training examples of the low-data task ``parse`` (default :data:`PARSE_TRAIN`).
    """
    ids = {t.name: i for i, t in enumerate(TASKS)}
    unknown = [t for t in tasks or [] if t not in ids]
    if unknown or tasks == []:
        raise ConfigError(f"data.tasks: unknown or no tasks {unknown} (known: {', '.join(ids)})")
    parse_train = PARSE_TRAIN if low_data_examples is None else low_data_examples
    if not 1 <= parse_train <= NUMBER_TRAIN:
        raise ConfigError(
            f"data.low_data_examples: expected 1 to {NUMBER_TRAIN} (parse's training numbers), got {parse_train}"
        )
    wanted = set(tasks or ids)
    splits: dict[str, list[tuple[int, str, Tensor, Tensor]]] = {"train": [], "val": [], "test": []}

    if "mnist" in wanted:
        _add_mnist(splits, root, image)
    if wanted & {"asr", "speaker"}:
        _add_fsdd(splits, root, audio)
    if wanted & {"translate", "parse"}:
        _add_numbers(splits, text, parse_train)
    chosen = {s: [x for x in samples if TASKS[x[0]].name in wanted] for s, samples in splits.items()}
    return MultitaskDigits(chosen["train"]), MultitaskDigits(chosen["val"]), MultitaskDigits(chosen["test"])


def _add_mnist(splits: dict[str, list[Any]], root: str | None, image: ImageConfig) -> None:
    task_id, offset = [t.name for t in TASKS].index("mnist"), class_offsets(TASKS)["mnist"]
    images = ImageAdapter(image)
    for split, (x, y) in _mnist(root).items():
        for pixels, label in zip(images.from_arrays(x, "mnist"), y.tolist(), strict=True):
            splits[split].append((task_id, "image", pixels, _class_target(task_id, offset + label)))


def _add_fsdd(splits: dict[str, list[Any]], root: str | None, audio: AudioConfig) -> None:
    ids, offsets = {t.name: i for i, t in enumerate(TASKS)}, class_offsets(TASKS)
    for split, digit, speaker, mel in _fsdd(root, audio.model_dump_json()):
        word = DIGIT_WORDS[digit]
        speaker_class = offsets["speaker"] + SPEAKERS.index(speaker)
        splits[split].append((ids["asr"], "audio", mel, _text_target(ids["asr"], word)))
        splits[split].append((ids["speaker"], "audio", mel, _class_target(ids["speaker"], speaker_class)))


def _add_numbers(splits: dict[str, list[Any]], text: TextConfig, parse_train: int) -> None:
    ids = {t.name: i for i, t in enumerate(TASKS)}
    phrases = number_phrases()
    # A fixed split of the numbers (not the run seed), so every run tests on the same 200 numbers.
    order = np.random.default_rng(0).permutation(len(phrases))
    by_split = {
        "test": order[:NUMBER_TEST],
        "val": order[NUMBER_TEST : NUMBER_TEST + NUMBER_VAL],
        "train": order[NUMBER_TEST + NUMBER_VAL :],  # NUMBER_TRAIN numbers
    }
    tokens = TextAdapter(text)
    for split, chosen in by_split.items():
        for rank, i in enumerate(chosen.tolist()):
            number, english, french = phrases[i]
            x = tokens.from_text(english)
            splits[split].append((ids["translate"], "text", x, _text_target(ids["translate"], french)))
            if split != "train" or rank < parse_train:
                splits[split].append((ids["parse"], "text", x, _text_target(ids["parse"], str(number))))
