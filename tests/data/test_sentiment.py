"""Sentiment sources: MMSA/MulT pickles only with consent and via a safe cache, the MOSI npz and transcripts."""

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.data.config import DataConfig
from polymodal.data.sentiment import (
    cache_path,
    load_feature_file,
    load_mosi_transcripts,
    load_mosi_word_aligned,
    video_folds,
)
from polymodal.data.sources import build_data
from polymodal.errors import ConfigError, DataError

REAL_MOSI = "real CMU-MOSI"


def _mmsa_split(n: int, rng: np.random.Generator) -> dict:
    """An MMSA-format split: padded (N, L, D) arrays, unaligned lengths for audio/vision, BERT mask for text."""
    text = rng.standard_normal((n, 6, 4)).astype(np.float32)
    text_bert = np.zeros((n, 3, 6), dtype=np.float32)
    text_bert[:, 1, :3] = 1  # every text has 3 tokens
    audio = rng.standard_normal((n, 5, 3)).astype(np.float32)
    audio[0, 0, 0] = -np.inf  # COVAREP's silent frames
    return {
        "raw_text": [f"utterance {i}" for i in range(n)],
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": rng.standard_normal((n, 7, 2)).astype(np.float32),
        "audio_lengths": [2 + i % 3 for i in range(n)],
        "vision_lengths": [1 + i % 7 for i in range(n)],
        "id": [f"video{i // 2}_{i % 2 + 1}" for i in range(n)],
        "regression_labels": np.linspace(-3, 3, n).astype(np.float32),
    }


def _mmsa_pickle(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "aligned_tiny.pkl"
    path.write_bytes(pickle.dumps({s: _mmsa_split(n, rng) for s, n in (("train", 6), ("valid", 3), ("test", 4))}))
    return path


def test_pickle_is_refused_without_consent(tmp_path):
    path = _mmsa_pickle(tmp_path)
    with pytest.raises(ConfigError, match="loading a pickle can run arbitrary code.*--trust-pickle") as err:
        load_feature_file(path, "mmsa", trust_pickle=False)
    assert "\n" not in str(err.value)
    assert not cache_path(path).exists()


def test_mmsa_pickle_converts_once_into_safe_cache(tmp_path):
    path = _mmsa_pickle(tmp_path)
    splits = load_feature_file(path, "mmsa", trust_pickle=True)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [6, 3, 4]
    sample = splits["train"][4]
    assert sample["inputs"]["text"].shape == (3, 4)  # BERT mask length
    assert sample["inputs"]["acoustic"].shape == (2 + 4 % 3, 3)
    assert sample["inputs"]["vision"].shape == (5, 2)
    assert torch.isfinite(splits["train"][0]["inputs"]["acoustic"]).all()  # -inf replaced
    assert sample["target"].item() == pytest.approx(np.linspace(-3, 3, 6)[4])
    # Later loads need no consent: the cache is read with allow_pickle=False, even with the pickle gone.
    path.unlink()
    again = load_feature_file(path, "mmsa", trust_pickle=False)
    torch.testing.assert_close(again["train"][4]["inputs"]["vision"], sample["inputs"]["vision"])
    np.load(cache_path(path), allow_pickle=False).close()


def test_mult_pickle_strips_padding(tmp_path):
    rng = np.random.default_rng(1)

    def split(n: int) -> dict:
        arrays = {k: rng.standard_normal((n, 5, d)).astype(np.float32) for k, d in (("text", 4), ("audio", 3))}
        arrays["vision"] = rng.standard_normal((n, 5, 2)).astype(np.float32)
        for values in arrays.values():
            values[:, :2] = 0  # MulT pads at the front
        return {
            **arrays,
            "labels": rng.standard_normal((n, 1, 1)).astype(np.float32),
            "id": [["v", i] for i in range(n)],
        }

    path = tmp_path / "mosi_data.pkl"
    path.write_bytes(pickle.dumps({"train": split(3), "valid": split(2), "test": split(2)}))
    splits = load_feature_file(path, "mult", trust_pickle=True)
    assert splits["test"][1]["inputs"]["text"].shape == (3, 4)
    assert splits["test"].ids == ["v_0", "v_1"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused_even_with_consent(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": _Exploit()}))
    with pytest.raises(DataError, match=r"refuses to unpickle .*system"):
        load_feature_file(path, "mmsa", trust_pickle=True)


def test_mmsa_source_through_config(tmp_path):
    path = _mmsa_pickle(tmp_path)
    data = DataConfig(name="mmsa", root=str(path), task="regression", trust_pickle=True, modalities=["text", "vision"])
    bundle = build_data(data, seed=0, progress=False)
    assert bundle.modalities == ["text", "vision"]
    assert bundle.shapes == {"text": (4,), "acoustic": (3,), "vision": (2,)}
    with pytest.raises(ConfigError, match="data.task: mmsa holds sentiment scores"):
        build_data(DataConfig(name="mmsa", root=str(path)), seed=0, progress=False)


def _word_aligned(path: Path, videos: int, per_video: int) -> Path:
    """A tiny npz in the layout of ``misa/dev_word_aligned.npz``: words with FACET and COVAREP steps per segment."""
    rng = np.random.default_rng(0)
    n = videos * per_video
    offsets = np.concatenate([[0], np.cumsum(1 + np.arange(n) % 3)])
    np.savez(
        path,
        segment_id=np.array([f"video{i // per_video}[{i % per_video}]" for i in range(n)]),
        label=np.linspace(-3, 3, n).astype(np.float32),
        lengths=np.diff(offsets),
        offsets=offsets,
        visual=rng.standard_normal((offsets[-1], 47)).astype(np.float32),
        acoustic=rng.standard_normal((offsets[-1], 74)).astype(np.float32),
        words=np.array([f"w{j}" for j in range(offsets[-1])]),
    )
    return path


def _check_word_aligned_and_video_folds(path: Path, size: int, videos: int, folds: int) -> None:
    dataset, video_ids = load_mosi_word_aligned(path)
    assert len(dataset) == size and len(set(video_ids)) == videos
    sample = dataset[0]
    assert sample["inputs"]["vision"].shape[1] == 47 and sample["inputs"]["acoustic"].shape[1] == 74
    assert sample["inputs"]["text"].dtype == torch.long
    seen = []
    for fold in range(folds):
        train, val, test = video_folds(video_ids, folds, fold)
        groups = [{video_ids[i] for i in part} for part in (train, val, test)]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
        assert len(train) + len(val) + len(test) == size
        seen += test
    assert sorted(seen) == list(range(size))  # every utterance is tested exactly once


def test_mosi_word_aligned_and_video_folds(tmp_path):
    _check_word_aligned_and_video_folds(_word_aligned(tmp_path / "aligned.npz", 4, 3), 12, 4, 3)


def test_real_mosi_word_aligned_and_video_folds(shared_file):
    _check_word_aligned_and_video_folds(shared_file("mosi/misa/dev_word_aligned.npz", REAL_MOSI), 229, 10, 5)


def test_mosi_transcripts_split_by_the_split_column(tmp_path):
    path = tmp_path / "labels_splits.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["segment_id", "label", "split", "text"])
        for i, split in enumerate(["train", "test", "train", "valid", "train", "test"]):
            writer.writerow([f"video_{i}", str(i / 2 - 1), split, f"utterance {i}" if i else ""])  # one empty
    splits = load_mosi_transcripts(tmp_path)
    assert [splits[s].ids for s in ("train", "valid", "test")] == [
        ["video_0", "video_2", "video_4"],
        ["video_3"],
        ["video_1", "video_5"],
    ]
    assert splits["test"].modalities == ["text"]
    assert splits["train"][1]["target"].item() == pytest.approx(0.0)


def test_real_mosi_transcripts_official_split(shared_file):
    splits = load_mosi_transcripts(shared_file("mosi/labels_splits.csv", REAL_MOSI))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [1284, 229, 686]
    assert splits["test"].modalities == ["text"]


def test_cli_refuses_pickle_without_flag_and_converts_with_it(tmp_path, capsys):
    from polymodal.cli import main

    path = _mmsa_pickle(tmp_path)
    common = [f"data.root={path}", "trainer.epochs=1", "trainer.progress=false", "eval.noise_levels=[0.0]"]
    common += ["model.encoders={text: {name: transformer, dim: 8, depth: 1, heads: 2}}"]
    code = main(["train", "selfmi-mosi", "data.name=mmsa", *common, "--out", str(tmp_path / "refused")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--trust-pickle" in lines[0]
    assert not (tmp_path / "refused").exists() and not cache_path(path).exists()
    code = main(["train", "selfmi-mosi", "data.name=mmsa", *common, "--trust-pickle", "--out", str(tmp_path / "ok")])
    assert code == 0 and cache_path(path).is_file()
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["test"]["mae"] >= 0
