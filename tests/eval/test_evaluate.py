"""The full evaluation report of a split: its passes, in order, each shown by name when progress is on."""

from __future__ import annotations

import pytest
import torch

from polymodal.eval.evaluate import full_report

MODALITIES = ["image", "audio", "text"]


class ImagePresence:
    """Class 1 when the image is there; its features are the inputs themselves, unless it cannot ``split``."""

    def __init__(self, split: bool) -> None:
        self.split = split

    def predict(self, batch: dict) -> torch.Tensor:
        return self.predict_features(batch["inputs"], batch["present"])

    def encode(self, batch: dict) -> dict | None:
        return dict(batch["inputs"]) if self.split else None

    def predict_features(self, features: dict, present: dict) -> torch.Tensor:
        return torch.stack([~present["image"], present["image"]], dim=1).float()


@pytest.mark.parametrize("split", [False, True])
def test_full_report_shows_each_pass(capsys, monkeypatch, split):
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 0.0)  # a plain line after every batch
    batch = {
        "inputs": {m: torch.ones(2, 3) for m in MODALITIES},
        "present": {m: torch.ones(2, dtype=torch.bool) for m in MODALITIES},
        "target": torch.tensor([1, 1]),
    }
    report = full_report(
        ImagePresence(split),
        [batch],
        "classification",
        MODALITIES,
        ["a", "b"],
        [0.0, 1.0],
        0,
        "cpu",
        None,
        show_progress=True,
    )
    passes = [line.split("  ")[0] for line in capsys.readouterr().err.splitlines()]
    # Subsets scored from the first pass's features need no pass of their own; a noise level needs one.
    subsets = [] if split else [*(f"{m} alone" for m in MODALITIES), *(f"without {m}" for m in MODALITIES), "no noise"]
    assert passes == ["all modalities", *subsets, *(f"noise 1 on {m}" for m in MODALITIES)]
    assert report["per_modality"]["image"]["accuracy"] == 1.0 and report["missing"]["image"]["accuracy"] == 0.0
    assert report["per_modality"]["audio"]["accuracy"] == 0.0 and report["missing"]["audio"]["accuracy"] == 1.0
