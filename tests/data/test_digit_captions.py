"""Captioned MNIST: caption text, sample format, determinism, and that captions carry only the digit."""

import numpy as np
import pytest

from polymodal.data.digit_captions import LANGUAGES, Captioned, DigitCaptions, caption, digit_caption_splits
from polymodal.errors import DataError
from polymodal.modalities.image import ImageConfig
from polymodal.modalities.text import ByteTokenizer, TextConfig


def test_caption_uses_the_language_and_template():
    assert caption(7, "fr", 2) == "le chiffre sept"
    assert caption(3, "en", 1) == "a handwritten three"
    assert caption(0, "de", 0) == "null"


def test_samples_pair_each_image_with_a_caption_of_its_digit():
    images = np.zeros((6, 28, 28), dtype=np.uint8)
    images[:, 10:20, 10:20] = 255
    labels = np.array([0, 1, 2, 3, 4, 5])
    data = DigitCaptions(images, labels, seed=1, image=ImageConfig(), text=TextConfig())
    again = DigitCaptions(images, labels, seed=1, image=ImageConfig(), text=TextConfig())
    assert data.captions == again.captions
    sample = data[2]
    assert sample["inputs"]["image"].shape == (1, 28, 28) and int(sample["target"]) == 2
    assert ByteTokenizer(64).decode(sample["inputs"]["text"]) == data.captions[2]
    language = LANGUAGES[int(data.languages[2])]
    assert data.captions[2] in {caption(2, language, t) for t in range(3)}


def test_missing_mnist_file_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match=r"mnist\.npz: file not found"):
        digit_caption_splits(tmp_path / "mnist.npz", 0, ImageConfig(), TextConfig())


def test_captioned_adds_a_phrase_of_each_samples_digit_as_text():
    import torch
    from torch.utils.data import Subset

    class Digits(torch.utils.data.Dataset):
        modalities = ("image",)
        class_names = [str(d) for d in range(10)]
        targets = torch.tensor([3, 7, 0, 3])

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"inputs": {"image": torch.zeros(1, 2, 2)}, "target": self.targets[i], "index": i}

    data = Captioned(Subset(Digits(), [1, 3]), seed=0, text=TextConfig())
    assert data.modalities == ("text",) and data.targets.tolist() == [7, 3]
    sample = data[1]
    assert set(sample["inputs"]) == {"image", "text"} and sample["target"] == 3
    words = {caption(3, lang, t) for lang in LANGUAGES for t in range(3)}
    assert data.captions[1] in words
    from polymodal.modalities.text import TextAdapter

    assert torch.equal(sample["inputs"]["text"], TextAdapter(TextConfig()).from_text(data.captions[1]))
