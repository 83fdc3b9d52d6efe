"""The recipe's ``eval`` section: what is measured besides the main metrics (free of torch)."""

from __future__ import annotations

from polymodal.registry import ComponentConfig


class EvalConfig(ComponentConfig):
    """What is measured besides the main metrics."""

    noise_levels: list[float] = [0.0, 0.5, 1.0, 2.0]
    seed: int = 0
    per_modality_every_epoch: bool = True
    # Frozen-feature evaluation of image-text encoders (linear probes, retrieval, matching); needs a strategy with
    # ``embed`` and ``match`` (staged).
    representation: bool = False
