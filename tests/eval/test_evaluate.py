"""The full evaluation report of a split: its passes, in order, each shown by name when progress is on."""

from __future__ import annotations

import torch

from polymodal.eval.evaluate import full_report


def test_full_report_shows_each_pass(capsys, monkeypatch):
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 0.0)  # a plain line after every batch
    modalities = ["image", "audio", "text"]
    batch = {
        "inputs": {m: torch.ones(2, 3) for m in modalities},
        "present": {m: torch.ones(2, dtype=torch.bool) for m in modalities},
        "target": torch.tensor([0, 1]),
    }

    def predict(b: dict) -> torch.Tensor:  # class 1 when the image is there
        return torch.stack([~b["present"]["image"], b["present"]["image"]], dim=1).float()

    report = full_report(
        predict, [batch], "classification", modalities, ["a", "b"], [0.0, 1.0], 0, "cpu", None, show_progress=True
    )
    passes = [line.split("  ")[0] for line in capsys.readouterr().err.splitlines()]
    assert passes == [
        "all modalities",
        *(f"{m} alone" for m in modalities),
        *(f"without {m}" for m in modalities),
        "no noise",
        *(f"noise 1 on {m}" for m in modalities),
    ]
    assert report["per_modality"]["image"]["accuracy"] == 0.5 and report["missing"]["image"]["accuracy"] == 0.5
