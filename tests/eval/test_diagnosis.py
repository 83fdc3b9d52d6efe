"""Laziness diagnosis: the 1-NN reference, chance, and which modalities are flagged, on hand-made cases."""

from __future__ import annotations

import pytest
import torch

from polymodal.eval.diagnosis import (
    MAX_REFERENCE_DIM,
    _vector,
    chance_score,
    diagnose,
    laziness_remedy,
    nearest_neighbour_scores,
)
from polymodal.training.config import TrainerConfig


def _samples(vectors: list[list[float]], tokens: list[list[int]], targets: list[float]) -> list[dict]:
    return [
        {"inputs": {"image": torch.tensor(v), "text": torch.tensor(t)}, "target": torch.tensor(y), "index": i}
        for i, (v, t, y) in enumerate(zip(vectors, tokens, targets, strict=True))
    ]


def test_nearest_neighbour_by_cosine_after_centring():
    # Training vectors (centred on their mean (1, 1)): class 0 points left, class 1 right.
    train = _samples([[0.0, 1.0], [2.0, 1.0]], [[3, 3], [4, 4]], [0, 1])
    test = _samples([[0.2, 5.0], [1.9, -3.0], [1.5, 1.0]], [[3, 0], [4, 4], [4, 0]], [0, 1, 0])
    scores = nearest_neighbour_scores(train, test, ["image", "text"], "classification")
    # image, centred: train (-1, 0) -> 0 and (1, 0) -> 1; test (-0.8, 4) -> 0 (right), (0.9, -4) -> 1 (right),
    # (0.5, 0) -> 1 (wrong).
    assert scores["image"] == pytest.approx(2 / 3)
    # text as bags of bytes (padding 0 not counted), centred: train (1, -1) -> 0 and (-1, 1) -> 1; test [3] ->
    # (0, -1) -> 0 (right), [4, 4] -> 1 (right), [4] -> (-1, 0) -> 1 (wrong).
    assert scores["text"] == pytest.approx(2 / 3)
    regression = nearest_neighbour_scores(train, test, ["image"], "regression")
    assert regression["image"] == pytest.approx(1 / 3)  # the neighbours' targets 0, 1, 1 against 0, 1, 0


def test_large_images_are_pooled_for_the_reference():
    spectrogram = torch.arange(112.0).repeat(112, 1)[None]  # (1, 112, 112): each column holds its own index
    pooled = _vector(spectrogram, "audio")
    assert pooled.numel() == 38 * 38 <= MAX_REFERENCE_DIM  # a factor of 3, the smallest that fits
    assert pooled.reshape(38, 38)[0, :2].tolist() == [1.0, 3.5]  # adaptive windows: columns 0-2, then 2-5
    small = torch.rand(1, 32, 64)  # exactly MAX_REFERENCE_DIM values: kept as they are
    torch.testing.assert_close(_vector(small, "audio"), small.flatten())


def test_chance_is_the_majority_class_or_the_mean():
    assert chance_score(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0, 2]), "classification") == 0.5
    assert abs(chance_score(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0]), "regression") - 1.0) < 1e-6


def test_flags_modalities_near_chance_or_below_their_reference():
    report = diagnose(
        {"image": 0.12, "audio": 0.50, "text": 0.97}, 0.10, {"image": 0.5, "audio": 0.6}, "classification", "FIX"
    )
    assert [m for m, r in report["modalities"].items() if r["lazy"]] == ["image", "audio"]
    assert report["findings"][0].startswith("image contributes little: alone its accuracy is 0.12, near chance")
    assert "below a raw 1-nearest-neighbour (0.60)" in report["findings"][1] and report["findings"][1].endswith("FIX")
    # Within the margin of its reference is fine; for regression lower MAE is better.
    assert not diagnose({"image": 0.46}, 0.1, {"image": 0.5}, "classification", "")["findings"]
    assert diagnose({"a": 0.9}, 1.0, {"a": 0.5}, "regression", "")["modalities"]["a"]["lazy"]
    assert not diagnose({"a": 0.5}, 1.0, {"a": 0.52}, "regression", "")["modalities"]["a"]["lazy"]


def test_remedy_names_the_overrides_the_run_lacks():
    plain = laziness_remedy({"name": "joint", "unimodal_weight": 0.0}, TrainerConfig())
    assert plain == "strategy.unimodal_weight=1.0 trainer.selection_metric=robust_accuracy"
    done = laziness_remedy({"name": "joint", "unimodal_weight": 1.0}, TrainerConfig(selection_metric="robust_accuracy"))
    assert done.startswith("trainer.epochs=6")
