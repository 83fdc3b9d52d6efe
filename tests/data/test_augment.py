"""Training-time augmentation of collated batches (data.augment)."""

from __future__ import annotations

import torch

from polymodal.data.augment import (
    AudioAugment,
    AugmentConfig,
    AugmentedCollate,
    ImageAugment,
    TextAugment,
    augment_images,
    augment_spectrograms,
    augment_tokens,
)
from polymodal.data.collate import Collate


def test_identity_settings_leave_inputs_unchanged():
    images = torch.randn(4, 3, 12, 12)
    same = augment_images(images, ImageAugment(shift=0, rotate=0, scale=0))
    assert torch.allclose(same, images, atol=1e-5)
    mels = torch.randn(4, 1, 8, 20)
    assert torch.equal(augment_spectrograms(mels, AudioAugment(shift=0, time_mask=0, freq_mask=0, gain_db=0)), mels)
    tokens = torch.randint(2, 258, (3, 7))
    assert torch.equal(augment_tokens(tokens, None, TextAugment(typo=0)), tokens)


def test_images_move_within_their_bounds():
    image = torch.zeros(64, 1, 16, 16)
    image[:, :, 6:10, 6:10] = 1.0
    moved = augment_images(image, ImageAugment(shift=0.2, rotate=0, scale=0))
    assert moved.shape == image.shape and not torch.allclose(moved, image)
    # A pure shift keeps the blob's mass (it stays inside the frame) and never overshoots the value range.
    assert torch.allclose(moved.sum((1, 2, 3)), image.sum((1, 2, 3)), rtol=0.15)
    assert moved.min() >= 0 and moved.max() <= 1 + 1e-6


def test_spectrogram_masks_use_each_clips_silence_level():
    mels = torch.full((8, 1, 10, 40), 2.0)
    mels[:, :, :, 0] = -5.0  # the clip's silence level
    out = augment_spectrograms(mels, AudioAugment(shift=0, time_mask=0.5, freq_mask=0.0, gain_db=0))
    masked = (out == -5.0).all(dim=2).squeeze(1)  # (B, T) frames set to silence
    assert masked[:, 1:].any() and out.shape == mels.shape
    # Gain shifts a whole clip by one constant within +-gain_db.
    loud = augment_spectrograms(mels, AudioAugment(shift=0, time_mask=0, freq_mask=0, gain_db=6))
    offset = (loud - mels).flatten(1)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset))
    assert offset.abs().max() <= 6 * torch.log(torch.tensor(10.0)) / 10 + 1e-6


def test_typos_never_touch_padding():
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    lengths = torch.tensor([3, 2])
    out = augment_tokens(tokens, lengths, TextAugment(typo=0.99))
    assert torch.equal(out[:, 3:], tokens[:, 3:]) and out[1, 2] == 0
    assert (out[tokens > 0] >= 2).all() and not torch.equal(out, tokens)


def test_collate_augments_inputs_by_kind():
    samples = [
        {"inputs": {"image:front": torch.rand(1, 8, 8), "image:side": torch.rand(1, 8, 8)}, "target": 0, "index": i}
        for i in range(4)
    ]
    plain = Collate()(samples)
    torch.manual_seed(0)
    augmented = AugmentedCollate(Collate(), AugmentConfig(image=ImageAugment()))(samples)
    for name in ("image:front", "image:side"):
        assert not torch.allclose(augmented["inputs"][name], plain["inputs"][name])
    untouched = AugmentedCollate(Collate(), AugmentConfig(audio=AudioAugment()))(samples)
    assert torch.equal(untouched["inputs"]["image:front"], plain["inputs"]["image:front"])
    assert not AugmentConfig().active and AugmentConfig(text=TextAugment()).active
