"""Cached features of frozen encoders: computed once, reused across epochs and runs, invalidated by changes."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from polymodal.cli import main
from polymodal.config import load_config
from polymodal.data.collate import Collate
from polymodal.data.feature_cache import (
    FeatureCollate,
    cache_folder,
    cacheable_inputs,
    is_frozen,
    prepare_feature_cache,
)
from polymodal.data.sources import build_data, fit_data_settings
from polymodal.models import ENCODERS, HFEncoder, RunEncoder
from polymodal.runs.train import build_strategy
from polymodal.training import Trainer

pytest.importorskip("transformers")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own."""
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def vit_recipe(vit_dir: Path, toy_recipe: Callable[..., Path]) -> Path:
    """The toy image manifests with a frozen ViT."""
    encoder = {"name": "hf", "path": str(vit_dir), "freeze": True}
    return toy_recipe("image", encoder, {"image": {"processor": str(vit_dir)}})


def setup(recipe: Path, *overrides: str) -> tuple[Any, Any, nn.Module]:
    """A recipe's config, data and model, as a run builds them."""
    config = load_config(str(recipe), list(overrides))
    fit_data_settings(config.data)
    bundle = build_data(config.data, config.trainer.seed, False)
    torch.manual_seed(0)
    return config, bundle, build_strategy(config, bundle).model


def prepare(config: Any, bundle: Any, model: nn.Module) -> tuple[Any, int]:
    """``prepare_feature_cache`` and the number of samples the image encoder encoded meanwhile."""
    encoded = []
    hook = model.encoders["image"].register_forward_hook(lambda m, args, out: encoded.append(len(out)))
    try:
        return prepare_feature_cache(config, bundle, model, torch.device("cpu")), sum(encoded)
    finally:
        hook.remove()


def test_cache_folder_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "mine" / "features"
    monkeypatch.delenv("POLYMODAL_CACHE")
    assert cache_folder() == tmp_path / "xdg" / "polymodal" / "features"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "polymodal" / "features"
    monkeypatch.setenv("POLYMODAL_CACHE", "off")
    assert cache_folder() is None


def test_frozen_encoders(vit_dir: Path) -> None:
    def hf(**spec: Any) -> nn.Module:
        spec = ENCODERS.validate({"name": "hf", "path": str(vit_dir), **spec}, "e")
        return ENCODERS.build(spec, input_shape=(3, 16, 16), kind="image")

    lenet = ENCODERS.build(ENCODERS.validate({"name": "lenet", "out_dim": 8}, "e"), input_shape=(1, 28, 28))
    assert is_frozen(hf(freeze=True))
    assert is_frozen(RunEncoder(lenet, freeze=True, lr_scale=1.0))
    assert not is_frozen(hf(freeze=False))
    assert not is_frozen(hf(freeze=1))
    assert not is_frozen(hf(freeze=True, out_dim=4))  # its projection trains
    # Fixed weights in train mode are not enough: batch norm and dropout still change with the mode.
    assert not is_frozen(lenet.requires_grad_(False))
    assert not is_frozen(nn.Sequential(nn.Linear(4, 4).requires_grad_(False).eval(), nn.Dropout(0.5)))


def test_cacheable_inputs(vit_recipe: Path) -> None:
    config, bundle, model = setup(vit_recipe)
    assert cacheable_inputs(model, config, bundle.shapes) == ["image"]
    for override in ("trainer.feature_cache=off", "data.augment.image={}", "model.encoders.image.freeze=false"):
        config, bundle, model = setup(vit_recipe, override)
        assert cacheable_inputs(model, config, bundle.shapes) == [], override


def test_features_are_computed_once_and_reused(vit_recipe: Path, cache: Path) -> None:
    config, bundle, model = setup(vit_recipe)
    first, encoded = prepare(config, bundle, model)
    assert encoded == len(bundle.train) + len(bundle.val)
    assert sorted(p.suffix for p in (cache / "features").iterdir()) == [".json", ".json", ".npy", ".npy"]
    # The rows are the encoder's features of the raw inputs, in the split's order.
    dataset = first.dataset("train", bundle.train)
    raw = torch.stack([bundle.train[i]["inputs"]["image"] for i in range(len(bundle.train))])
    with torch.no_grad():
        expected = model.encoders["image"].eval()(raw)
    rows = torch.stack([dataset[i]["inputs"]["image"] for i in range(len(dataset))])
    torch.testing.assert_close(rows, expected, rtol=1e-5, atol=1e-5)
    # A second run (a new model, same weights and data) encodes nothing; so does a torchrun process besides the main
    # one, which finds the main one's files.
    config, bundle, model = setup(vit_recipe)
    second, encoded = prepare(config, bundle, model)
    assert encoded == 0 and second.files == first.files
    other = prepare_feature_cache(config, bundle, model, torch.device("cpu"), main=False)
    assert other is not None and other.files == first.files


def test_other_processes_use_only_what_the_main_one_wrote(vit_recipe: Path, cache: Path) -> None:
    config, bundle, model = setup(vit_recipe)
    waited = []
    found = prepare_feature_cache(
        config, bundle, model, torch.device("cpu"), main=False, barrier=lambda: waited.append(1)
    )
    assert found is None and waited == [1] and not cache_folder().exists()


def test_changed_weights_or_data_are_computed_again(vit_recipe: Path, cache: Path) -> None:
    config, bundle, model = setup(vit_recipe)
    first, _ = prepare(config, bundle, model)
    with torch.no_grad():
        next(model.encoders["image"].parameters()).add_(0.01)
    changed, encoded = prepare(config, bundle, model)
    assert encoded == len(bundle.train) + len(bundle.val)
    assert all(changed.files[s]["image"] != first.files[s]["image"] for s in ("train", "val"))
    # One training image rewritten: only the split that holds it is computed again.
    config, bundle, model = setup(vit_recipe)
    row = next(r for r in csv.DictReader((vit_recipe.parent / "train.csv").open(encoding="utf-8")))
    picture = vit_recipe.parent / row["image"]
    Image.fromarray(255 - np.asarray(Image.open(picture))).save(picture)
    config, bundle, model = setup(vit_recipe)
    split = "train" if any(bundle.train[i]["index"] == 0 for i in range(len(bundle.train))) else "val"
    other = "val" if split == "train" else "train"
    again, encoded = prepare(config, bundle, model)
    assert encoded == len(getattr(bundle, split))
    assert again.files[split]["image"] != first.files[split]["image"]
    assert again.files[other]["image"] == first.files[other]["image"]


def test_corrupt_or_partial_files_are_computed_again(vit_recipe: Path, cache: Path, capsys) -> None:
    config, bundle, model = setup(vit_recipe)
    first, _ = prepare(config, bundle, model)
    train, val = first.files["train"]["image"], first.files["val"]["image"]
    data = bytearray(train.read_bytes())
    data[-1] ^= 0xFF
    train.write_bytes(bytes(data))
    val.with_suffix(".json").unlink()
    capsys.readouterr()
    _, encoded = prepare(config, bundle, model)
    warnings = capsys.readouterr().err.splitlines()
    assert encoded == len(bundle.train) + len(bundle.val)
    assert len(warnings) == 2
    assert f"{train}: checksum mismatch (truncated or corrupted)" in warnings[0]
    assert f"{val}: no .json beside it (partly written)" in warnings[1]
    _, encoded = prepare(config, bundle, model)
    assert encoded == 0 and capsys.readouterr().err == ""


def test_unwritable_cache_folder_means_no_cache(vit_recipe: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "file"))
    config, bundle, model = setup(vit_recipe)
    capsys.readouterr()
    assert prepare(config, bundle, model)[0] is None
    assert "cannot write" in capsys.readouterr().err


def test_feature_collate_stacks_features_and_marks_absent_ones() -> None:
    collate = FeatureCollate(Collate({"text": ()}, {"text": torch.long}), {"image": 3})
    samples = [
        {"inputs": {"image": torch.ones(3), "text": torch.tensor([5, 6])}, "target": 0, "index": 0},
        {"inputs": {"image": None, "text": torch.tensor([7])}, "target": 1, "index": 1},
    ]
    batch = collate(samples)
    assert list(batch["inputs"]) == ["image", "text"]
    assert torch.equal(batch["inputs"]["image"], torch.tensor([[1.0, 1, 1], [0, 0, 0]]))
    assert batch["present"]["image"].tolist() == [True, False]
    assert batch["inputs"]["text"].tolist() == [[5, 6], [7, 0]] and batch["lengths"]["text"].tolist() == [2, 1]
    assert "image" not in batch["lengths"]


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Samples ``hf`` encoders encoded, per modality: all of them (``all``) and those in ``Trainer.fit`` (``fit``)."""
    counts: dict[str, Counter] = {"all": Counter(), "fit": Counter()}
    forward, fit = HFEncoder.forward, Trainer.fit

    def counting_forward(self: HFEncoder, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        counts["all"][self.modality] += len(x)
        return forward(self, x, lengths)

    def counting_fit(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        before = counts["all"].copy()
        try:
            return fit(self, *args, **kwargs)
        finally:
            counts["fit"].update(counts["all"] - before)

    monkeypatch.setattr(HFEncoder, "forward", counting_forward)
    monkeypatch.setattr(Trainer, "fit", counting_fit)
    return counts


def _log(run: Path) -> dict[tuple[str, str], float]:
    with (run / "log.csv").open(encoding="utf-8") as f:
        return {(r["step"], r["name"]): float(r["value"]) for r in csv.DictReader(f)}


@pytest.mark.e2e
@pytest.mark.parametrize("strategy", ["joint", "alternating"])
def test_runs_with_the_cache_match_runs_without(strategy, vit_dir, bert_dir, toy_recipe, cache, encoded) -> None:
    """joint: images and texts both cached; alternating: images cached, texts augmented (encoded every epoch)."""
    encoders = {m: {"name": "hf", "path": str(d), "freeze": True} for m, d in (("image", vit_dir), ("text", bert_dir))}
    data: dict[str, Any] = {
        "modalities": {"image": "image", "text": "text"},
        "image": {"processor": str(vit_dir)},
        "text": {"tokenizer": str(bert_dir), "max_length": 8},
    }
    overrides = [f"model.encoders={json.dumps(encoders)}", f"strategy.name={strategy}", "trainer.epochs=2"]
    if strategy == "alternating":
        data["augment"] = {"text": {}}
        overrides.append("model.fusion.name=late")
    recipe = toy_recipe("image", encoders["image"], data)

    def train(name: str, *more: str) -> tuple[Path, dict[str, Counter]]:
        before = {k: c.copy() for k, c in encoded.items()}
        assert main(["train", str(recipe), *overrides, *more, "--out", str(recipe.parent / name)]) == 0
        return recipe.parent / name, {k: c - before[k] for k, c in encoded.items()}

    _, bundle, _ = setup(recipe, *overrides)
    samples = len(bundle.train) + len(bundle.val)
    cached, first = train("cached")
    again, second = train("again")
    plain, without = train("plain", "trainer.feature_cache=off")
    _, augmented = train("augmented", "data.augment.image={}")
    # A cached input was encoded on train and val once before the first epoch and never while training; the second
    # run found those features. Without the cache, or when augmented, it is encoded every epoch.
    for m in ("image", "text") if strategy == "joint" else ("image",):
        assert first["fit"][m] == second["fit"][m] == 0
        assert first["all"][m] - second["all"][m] == samples
        assert without["fit"][m] >= 2 * samples
    assert augmented["fit"]["image"] >= 2 * samples
    if strategy == "alternating":
        assert first["fit"]["text"] == without["fit"]["text"] >= 2 * samples
    assert _log(cached) == _log(again)
    log = _log(cached)
    for key, value in _log(plain).items():
        assert math.isclose(log[key], value, rel_tol=1e-4, abs_tol=1e-5), key
    metrics = [json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"] for run in (cached, plain)]
    assert metrics[0] == pytest.approx(metrics[1], rel=1e-4, abs=1e-5)


@pytest.mark.e2e
def test_benchmark_times_epochs_with_and_without_the_cache(vit_recipe: Path, tmp_path: Path, monkeypatch) -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "feature_cache.py"
    spec = importlib.util.spec_from_file_location("feature_cache_benchmark", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "unused"))
    out = tmp_path / "result.json"
    monkeypatch.setattr(
        sys, "argv", [str(script), str(vit_recipe), "trainer.epochs=2", "--repeats", "1", "--out", str(out)]
    )
    bench.main()
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [run["mode"] for run in result["runs"]] == ["auto", "off", "auto"]
    assert all(run["epoch_seconds"] > 0 for run in result["runs"])
    assert result["ratio"] > 0 and result["build_seconds"] > 0 and result["lookup_seconds"] > 0
    assert result["test"]["auto"] == pytest.approx(result["test"]["off"], rel=1e-4, abs=1e-5)
    assert not (tmp_path / "unused").exists()  # a temporary cache folder of its own
