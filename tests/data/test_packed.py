"""Packed datasets: a manifest packed into shards reads back sample for sample, lazily, and checks its checksums."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.cli import main
from polymodal.data.config import DataConfig
from polymodal.data.manifest import ManifestDataset
from polymodal.data.packed import PackedDataset
from polymodal.data.sources import build_data, pack_manifest
from polymodal.errors import DataError


def write_manifest(folder: Path, name: str, labels: list[str]) -> Path:
    """Rows with an image, a caption and a feature sequence; some cells empty."""
    rng = np.random.default_rng(len(labels))
    rows = []
    for i, label in enumerate(labels):
        image = folder / f"{name}{i}.png"
        Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), mode="L").save(image)
        features = folder / f"{name}{i}.npy"
        np.save(features, rng.standard_normal((i % 3 + 1, 2)).astype(np.float32))
        caption = "" if i == 1 else f"item {label} {'x' * i}"
        rows.append([image.name if i != 2 else "", caption, features.name, label])
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["picture", "caption", "feats", "label"])
        writer.writerows(rows)
    return path


def test_packed_samples_equal_the_manifest_samples(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, "train", ["a", "b", "a", "c", "b"])
    data = DataConfig(image={"size": 8})
    index = pack_manifest(manifest, data, tmp_path / "pack", shard_size=2, progress=False)
    assert [s["size"] for s in index["shards"]] == [2, 2, 1]
    reference = ManifestDataset(manifest, target="label", settings={"image": data.image}, show_progress=False)
    packed = PackedDataset(tmp_path / "pack")
    assert len(packed) == len(reference) == 5
    assert packed.shapes == reference.shapes and packed.class_names == reference.class_names
    for i in range(5):
        want, got = reference[i], packed[i]
        assert got["index"] == i
        torch.testing.assert_close(got["target"], want["target"], rtol=0, atol=0)
        for m, value in want["inputs"].items():
            if value is None:
                assert got["inputs"][m] is None, (i, m)
            else:
                torch.testing.assert_close(got["inputs"][m], value, rtol=0, atol=0)
    assert isinstance(packed._array(0, "image"), np.memmap)  # read lazily from the file, not loaded


def test_corrupt_shard_is_one_line_error_naming_the_file(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, "train", ["a", "b", "a"])
    pack_manifest(manifest, DataConfig(image={"size": 8}), tmp_path / "pack", shard_size=2, progress=False)
    shard = tmp_path / "pack" / "shard-00001.image.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError) as failure:
        PackedDataset(tmp_path / "pack")
    assert str(failure.value) == f"{shard}: checksum mismatch (truncated or corrupted shard; pack again)"


def test_cli_pack_then_packed_source_maps_test_classes_to_train(tmp_path: Path, capsys) -> None:
    train = write_manifest(tmp_path, "train", ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"])
    test = write_manifest(tmp_path, "test", ["c", "b", "c"])
    for manifest, out in ((train, "train_pack"), (test, "test_pack")):
        assert main(["data", "pack", str(manifest), "image.size=8", "--out", str(tmp_path / out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "test_pack/index.json").read_text())["class_names"] == ["b", "c"]
    data = DataConfig(name="packed", train=str(tmp_path / "train_pack"), test=str(tmp_path / "test_pack"))
    bundle = build_data(data, seed=0, progress=False)
    assert bundle.class_names == ["a", "b", "c"]
    assert [int(bundle.test[i]["target"]) for i in range(3)] == [2, 1, 2]  # "c", "b", "c" in the train classes
    assert len(bundle.train) + len(bundle.val) == 10
    assert bundle.shapes == {"image": (1, 8, 8), "text": (), "features": (2,)}
    assert main(["data", "pack", str(train), "--out", str(tmp_path / "train_pack")]) == 2
    assert "already holds a packed dataset" in capsys.readouterr().err
