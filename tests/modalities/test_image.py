"""Tests of the image adapter: channel conversion, resizing, scaling and file errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.errors import DataError
from polymodal.modalities.image import ImageAdapter, ImageConfig


def test_uint8_gray_is_scaled_and_normalised():
    arr = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = ImageAdapter(ImageConfig(size=2)).from_array(arr)
    expected = (torch.tensor([[0.0, 1.0], [0.2, 0.4]]) - 0.5) / 0.5
    torch.testing.assert_close(out, expected[None], atol=1e-6, rtol=0)


def test_rgb_to_gray_uses_luma_weights():
    arr = np.zeros((2, 2, 3), dtype=np.float32)
    arr[0, 0] = [1.0, 0.0, 0.0]
    arr[0, 1] = [0.0, 1.0, 0.0]
    arr[1, 0] = [0.0, 0.0, 1.0]
    out = ImageAdapter(ImageConfig(size=2, mean=0.0, std=1.0)).from_array(arr)
    torch.testing.assert_close(out, torch.tensor([[[0.299, 0.587], [0.114, 0.0]]]), atol=1e-6, rtol=0)


def test_gray_to_rgb_repeats_and_rgba_drops_alpha():
    gray = np.full((3, 3, 1), 0.25, dtype=np.float32)
    out = ImageAdapter(ImageConfig(size=3, channels=3, mean=0.0, std=1.0)).from_array(gray)
    torch.testing.assert_close(out, torch.full((3, 3, 3), 0.25))
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 7
    out = ImageAdapter(ImageConfig(size=3, channels=3, mean=0.0, std=1.0)).from_array(rgba)
    torch.testing.assert_close(out[0], torch.ones(3, 3))
    torch.testing.assert_close(out[1:], torch.zeros(2, 3, 3))


def test_non_square_image_is_resized():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(100, 60, 3), dtype=np.uint8)
    out = ImageAdapter(ImageConfig(size=8)).from_array(arr)
    assert out.shape == (1, 8, 8) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_constant_image_stays_constant_after_resize():
    out = ImageAdapter(ImageConfig(size=4, mean=0.0, std=1.0)).from_array(np.full((10, 6), 0.3, dtype=np.float32))
    torch.testing.assert_close(out, torch.full((1, 4, 4), 0.3))


def test_from_arrays_matches_from_array():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, size=(3, 5, 5), dtype=np.uint8)
    adapter = ImageAdapter(ImageConfig(size=4))
    torch.testing.assert_close(adapter.from_arrays(stack)[1], adapter.from_array(stack[1]))


def test_from_file_png_and_npy(tmp_path):
    arr = np.zeros((6, 4, 3), dtype=np.uint8)
    arr[..., 1] = 255
    Image.fromarray(arr).save(tmp_path / "green.png")
    np.save(tmp_path / "green.npy", arr)
    adapter = ImageAdapter(ImageConfig(size=4, mean=0.0, std=1.0))
    from_png = adapter.from_file(tmp_path / "green.png")
    assert from_png.shape == (1, 4, 4)
    torch.testing.assert_close(from_png, torch.full((1, 4, 4), 150 / 255), atol=1 / 255, rtol=0)  # PIL's L = luma
    torch.testing.assert_close(
        adapter.from_file(tmp_path / "green.npy"), torch.full((1, 4, 4), 0.587), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.png", b"definitely not a png", "not a readable image"),
        ("bad.npy", b"not an npy", "not a valid .npy file"),
    ],
)
def test_unreadable_files(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        ImageAdapter(ImageConfig()).from_file(path)
    assert str(info.value).startswith(f"{path}: {problem}") and "\n" not in str(info.value)


def test_missing_file_and_bad_arrays(tmp_path):
    adapter = ImageAdapter(ImageConfig())
    with pytest.raises(DataError, match="nope.png: file not found"):
        adapter.from_file(tmp_path / "nope.png")
    with pytest.raises(DataError, match=r"array: expected an image of shape"):
        adapter.from_array(np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="unsupported pixel dtype"):
        adapter.from_array(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(DataError, match="NaN or inf"):
        adapter.from_array(np.full((2, 2), np.nan))


def test_config_rejects_unknown_keys_and_channels():
    with pytest.raises(ValueError, match="extra"):
        ImageConfig(sizes=3)
    with pytest.raises(ValueError):
        ImageConfig(channels=2)
