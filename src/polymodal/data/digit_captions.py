"""MNIST digits with generated multilingual captions: images, number phrases and image-caption pairs (MoMo).

Every sample holds an MNIST image and a caption naming its digit in one of eight languages and one of three
templates per language (number words from ``num2words``), drawn per sample from a fixed seed. The captions are the
text corpus of the unimodal text stage, and each (image, caption) is a pair of the multimodal stage. A caption names
only the digit, and about a tenth of all images share it, so which image a caption belongs to cannot be told from
the text alone: image-text matching and retrieval need the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from num2words import num2words
from torch.utils.data import Dataset

from polymodal.data.avdigits import digit_images
from polymodal.data.mnist import read_mnist
from polymodal.modalities.image import ImageAdapter, ImageConfig
from polymodal.modalities.text import TextAdapter, TextConfig

# Templates per language; {} is the number word. num2words gives the word itself.
TEMPLATES = {
    "en": ("{}", "a handwritten {}", "the digit {}"),
    "fr": ("{}", "un {} écrit à la main", "le chiffre {}"),
    "de": ("{}", "eine handgeschriebene {}", "die Ziffer {}"),
    "es": ("{}", "un {} escrito a mano", "el dígito {}"),
    "it": ("{}", "un {} scritto a mano", "la cifra {}"),
    "pt": ("{}", "um {} escrito à mão", "o dígito {}"),
    "nl": ("{}", "een handgeschreven {}", "het cijfer {}"),
    "pl": ("{}", "odręczna cyfra {}", "cyfra {}"),
}
LANGUAGES = tuple(TEMPLATES)
VAL_SIZE = 1000  # validation images; kept small so per-epoch validation stays cheap on CPU
TEST_SIZE = 2000  # test images
SPLITS = ("train", "val", "test")


def caption(digit: int, language: str, template: int) -> str:
    """The caption of ``digit`` in ``language`` with template number ``template``, e.g. ``"le chiffre sept"``."""
    return TEMPLATES[language][template].format(num2words(digit, lang=language))


def draw_captions(labels: np.ndarray, seed: int) -> tuple[np.ndarray, list[str]]:
    """A caption per digit of ``labels``, language and template drawn per sample from ``seed``.

    Returns:
        (N,) index into ``LANGUAGES`` of each caption, and the N caption strings.
    """
    rng = np.random.default_rng(seed)
    languages = rng.integers(0, len(LANGUAGES), len(labels))
    templates = rng.integers(0, 3, len(labels))
    # 240 distinct captions in all: num2words runs once per (digit, language, template).
    cache: dict[tuple[int, int, int], str] = {}
    captions = []
    for d, lang, t in zip(np.asarray(labels).tolist(), languages.tolist(), templates.tolist(), strict=True):
        if (d, lang, t) not in cache:
            cache[(d, lang, t)] = caption(d, LANGUAGES[lang], t)
        captions.append(cache[(d, lang, t)])
    return languages, captions


class Captioned(Dataset):
    """Any digit dataset with a generated caption of each sample's digit added as its ``text`` input.

    Used for data without text (AV-MNIST, ``data.captions``), e.g. to train an audio-text space on it.

    Args:
        dataset: samples ``{"inputs", "target", "index"}`` whose targets are digits 0-9; needs ``targets``.
        seed: seed of the per-sample language and template.
        text: tokeniser settings.
    """

    def __init__(self, dataset: Any, seed: int, text: TextConfig) -> None:
        self.dataset = dataset
        self.targets = dataset_targets(dataset)
        self.languages, self.captions = draw_captions(self.targets.numpy(), seed)
        adapter = TextAdapter(text)
        self._tokens = {c: adapter.from_text(c) for c in set(self.captions)}
        self.modalities = (*getattr(dataset, "modalities", ()), "text")
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.dataset[i]
        return {**sample, "inputs": {**sample["inputs"], "text": self._tokens[self.captions[i]]}}


def dataset_targets(dataset: Any) -> torch.Tensor:
    """The (N,) int64 targets of a dataset with ``targets``, or of a ``Subset`` of one."""
    if hasattr(dataset, "targets"):
        return torch.as_tensor(dataset.targets).long()
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):
        return dataset_targets(dataset.dataset)[torch.as_tensor(dataset.indices)]
    raise TypeError(f"{type(dataset).__name__} has no targets")


class DigitCaptions(Dataset):
    """One split of captioned MNIST; a sample is ``{"inputs": {"image", "text"}, "target": digit, "index": i}``.

    Args:
        images: (N, 28, 28) uint8 MNIST images.
        labels: (N,) digits.
        seed: seed of the per-sample language and template.
        image: image adapter settings.
        text: tokeniser settings.

    Attributes:
        languages: (N,) index into ``LANGUAGES`` of each caption (for a language probe).
        captions: the caption strings.
    """

    modalities = ("image", "text")
    class_names = [str(d) for d in range(10)]

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, image: ImageConfig, text: TextConfig) -> None:
        self.languages, self.captions = draw_captions(labels, seed)
        adapter = TextAdapter(text)
        self._tokens = {c: adapter.from_text(c) for c in set(self.captions)}
        # Kept as uint8 and converted per sample: 59,000 float images would take 185 MB.
        self._images = images
        self._adapter = ImageAdapter(image)
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        inputs = {"image": self._adapter.from_array(self._images[i], "mnist"), "text": self._tokens[self.captions[i]]}
        return {"inputs": inputs, "target": self.targets[i], "index": i}


def digit_caption_splits(
    path: str | Path | None, seed: int, image: ImageConfig, text: TextConfig
) -> tuple[DigitCaptions, DigitCaptions, DigitCaptions]:
    """Train, val (at most VAL_SIZE) and test (at most TEST_SIZE) captioned digits.

    Args:
        path: a Keras-style ``mnist.npz``: train is its training images minus the last VAL_SIZE, val those, test its
            first TEST_SIZE test images. None uses the packaged avdigits images: all of its train split, the first
            VAL_SIZE of its val and the first TEST_SIZE of its test split.
        seed: the captions of each split are drawn with their own fixed seed derived from it.
        image: image adapter settings.
        text: tokeniser settings.
    """
    if path is None:
        train, val, test = (digit_images(split) for split in SPLITS)
        parts = {"train": train, "val": tuple(a[:VAL_SIZE] for a in val), "test": tuple(a[:TEST_SIZE] for a in test)}
    else:
        arrays = read_mnist(Path(path))
        n = len(arrays["x_train"]) - VAL_SIZE
        parts = {
            "train": (arrays["x_train"][:n], arrays["y_train"][:n]),
            "val": (arrays["x_train"][n:], arrays["y_train"][n:]),
            "test": (arrays["x_test"][:TEST_SIZE], arrays["y_test"][:TEST_SIZE]),
        }
    train_set, val_set, test_set = (
        DigitCaptions(x, y, seed * 3 + k, image, text) for k, (x, y) in enumerate(parts[s] for s in SPLITS)
    )
    return train_set, val_set, test_set
