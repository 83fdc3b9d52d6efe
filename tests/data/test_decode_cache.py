"""The decode cache of CSV manifests, and evaluation splits that decode only the manifest they score."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.data.config import DataConfig
from polymodal.data.decode_cache import cache_folder
from polymodal.data.manifest import ManifestDataset
from polymodal.data.sources import build_data, build_split
from polymodal.errors import DataError
from polymodal.modalities.image import ImageConfig


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the manifests decoded from their files (not read from the cache), in order."""
    names: list[str] = []
    decode = ManifestDataset._decode

    def counted(self: ManifestDataset, *args: object) -> object:
        names.append(self.path.name)
        return decode(self, *args)

    monkeypatch.setattr(ManifestDataset, "_decode", counted)
    return names


def load(manifest: Path, cache: Path, **options: object) -> ManifestDataset:
    return ManifestDataset(manifest, target="label", cache=cache, show_progress=False, **options)


def same_samples(a: ManifestDataset, b: ManifestDataset) -> None:
    assert a.cells == b.cells and len(a) == len(b)
    for i in range(len(a)):
        for m in a.modalities:
            x, y = a[i]["inputs"][m], b[i]["inputs"][m]
            assert (x is None) == (y is None)
            if x is not None:
                assert x.dtype == y.dtype
                torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_second_decode_reads_the_cache(tmp_path: Path, digit_manifest: Callable[..., Path], decodes, capsys):
    manifest = digit_manifest("train.csv", rows=12, features=True, empty_audio=(3,))
    first = load(manifest, tmp_path / "cache")
    assert decodes == ["train.csv"] and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = ManifestDataset(manifest, target="label", cache=tmp_path / "cache", show_progress=True)
    assert decodes == ["train.csv"]  # read back, not decoded
    assert "train.csv: 12 rows read from the decode cache" in capsys.readouterr().err
    same_samples(first, again)
    assert again[3]["inputs"]["audio"] is None and again.shapes == first.shapes and again.dtypes == first.dtypes
    uncached = ManifestDataset(manifest, target="label", show_progress=False)
    same_samples(first, uncached)


def test_a_changed_file_or_setting_decodes_again(tmp_path: Path, digit_manifest: Callable[..., Path], decodes):
    manifest = digit_manifest("train.csv", rows=6, features=True)
    cache = tmp_path / "cache"
    before = load(manifest, cache)
    # Other values in a file of the same size and modification time: the content hash tells them apart.
    array = tmp_path / "files" / "train_0.npy"
    stat = array.stat()
    np.save(array, np.load(array) + 1)
    os.utime(array, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert array.stat().st_size == stat.st_size
    after = load(manifest, cache)
    assert decodes == ["train.csv", "train.csv"]
    torch.testing.assert_close(after[0]["inputs"]["features"], before[0]["inputs"]["features"] + 1)
    assert len(list(cache.glob("*.npz"))) == 1  # the entry was replaced, not added to
    load(manifest, cache)
    assert len(decodes) == 2
    load(manifest, cache, settings={"image": ImageConfig(size=16)})  # other settings: another entry
    assert len(decodes) == 3 and len(list(cache.glob("*.npz"))) == 2
    manifest.write_text(manifest.read_text().replace("zero", "nought"))  # the manifest itself
    load(manifest, cache)
    assert len(decodes) == 4


def test_a_corrupt_entry_is_decoded_again(tmp_path: Path, digit_manifest: Callable[..., Path], decodes, capsys):
    manifest = digit_manifest("train.csv", rows=6)
    cache = tmp_path / "cache"
    first = load(manifest, cache)
    (entry,) = cache.glob("*.npz")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the stored arrays
    entry.write_bytes(bytes(data))
    again = load(manifest, cache)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"polymodal: note: {entry}: unreadable decode cache entry")
    assert decodes == ["train.csv", "train.csv"]
    same_samples(first, again)
    load(manifest, cache)  # rewritten whole: read back again
    entry.write_bytes(b"not a zip file")
    load(manifest, cache)
    assert len(decodes) == 3 and "unreadable decode cache entry" in capsys.readouterr().err


def test_bad_cells_are_reported_and_never_cached(tmp_path: Path, digit_manifest: Callable[..., Path]):
    manifest = digit_manifest("train.csv", rows=4)
    (tmp_path / "files" / "train_1.wav").unlink()
    with pytest.raises(DataError, match="row 2, column 'audio': file not found"):
        load(manifest, tmp_path / "cache")
    (tmp_path / "files" / "train_2.wav").write_bytes(b"not a wav")
    with pytest.raises(DataError, match="2 bad cells"):
        load(manifest, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))


def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine" / "manifests"
    monkeypatch.setenv("POLYMODAL_CACHE", "off")
    assert cache_folder() is None
    monkeypatch.delenv("POLYMODAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "polymodal" / "manifests"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "polymodal" / "manifests"


def test_unwritable_cache_is_skipped_with_a_note(tmp_path: Path, digit_manifest: Callable[..., Path], capsys):
    manifest = digit_manifest("train.csv", rows=4)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be")
    dataset = load(manifest, blocker)
    assert len(dataset) == 4
    assert "polymodal: note: decode cache not written" in capsys.readouterr().err


@pytest.fixture
def manifest_data(tmp_path: Path, digit_manifest: Callable[..., Path]) -> DataConfig:
    digit_manifest("train.csv", rows=30)
    digit_manifest("test.csv", rows=10, offset=30)
    digit_manifest("val.csv", rows=10, offset=40)
    return DataConfig(
        name="manifest", train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"), target="label"
    )


def test_an_eval_split_decodes_only_its_manifest(manifest_data: DataConfig, monkeypatch, decodes):
    monkeypatch.setenv("POLYMODAL_CACHE", "off")
    bundle = build_data(manifest_data, seed=3, progress=False)
    info = bundle.info()
    decodes.clear()
    test = build_split(manifest_data, 3, "test", info, progress=False)
    assert decodes == ["test.csv"]
    same_samples(test, bundle.test)
    val = build_split(manifest_data, 3, "val", info, progress=False)  # carved from train, as the run carved it
    assert decodes == ["test.csv", "train.csv"] and val.indices == bundle.val.indices
    given = manifest_data.model_copy(update={"val": str(Path(manifest_data.train).parent / "val.csv")})
    build_split(given, 3, "val", info, progress=False)
    assert decodes[-1] == "val.csv"
    few = manifest_data.model_copy(update={"max_eval_samples": 4})
    assert build_split(few, 3, "test", info, progress=False).indices == build_data(few, 3, False).test.indices


def test_building_twice_decodes_once(manifest_data: DataConfig, decodes):
    build_data(manifest_data, seed=0, progress=False)
    assert decodes == ["train.csv", "test.csv"]
    bundle = build_data(manifest_data, seed=0, progress=False)  # a resumed run, or the next run of a sweep
    assert decodes == ["train.csv", "test.csv"] and len(bundle.train) + len(bundle.val) == 30
