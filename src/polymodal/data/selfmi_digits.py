"""A controlled sentiment-like regression task on AV-digits, where each modality's true contribution is known.

Each sample shows one digit as an image, a different one as speech and a third as a phrase. The target is
``sum_m w_m * (d_m - 4.5) / 4.5`` with weights ``(1.5, 1.0, 0.5)`` for (image, audio, text), so it spans [-3, 3]
like a CMU-MOSI score and ``contributions[:, m]`` is exactly modality m's share. The text digit is the one the phrase
names (phrases are noisy; see ``avdigits``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from polymodal.data.avdigits import AVDigits

WEIGHTS = {"image": 1.5, "audio": 1.0, "text": 0.5}


class SelfMIDigits(Dataset):
    """AV-digits samples re-paired so that image, audio and text carry independent digits.

    The pairing is fixed per split (seeded by the split name), not by the run seed, so every run sees the same data.

    Args:
        digits: the AV-digits split to draw from.
        seed: seed of the re-pairing.

    Attributes:
        contributions: (N, 3) float32, each modality's term of the target, in ``WEIGHTS`` order.
        targets: (N,) float32, the row sums of ``contributions``.
    """

    modalities = tuple(WEIGHTS)

    def __init__(self, digits: AVDigits, seed: int) -> None:
        self.digits = digits
        rng = np.random.default_rng(seed)
        n = len(digits)
        # Sample i takes its image from item i, its audio and text from two independent random items.
        self.sources = {"image": np.arange(n), "audio": rng.permutation(n), "text": rng.permutation(n)}
        values = {
            "image": digits.targets.numpy()[self.sources["image"]],
            "audio": digits.targets.numpy()[self.sources["audio"]],
            "text": digits.text_targets.numpy()[self.sources["text"]],
        }
        weights = np.array(list(WEIGHTS.values()), dtype=np.float32)
        digit_matrix = np.stack([values[m] for m in WEIGHTS], axis=1).astype(np.float32)
        self.contributions = torch.from_numpy(weights * (digit_matrix - 4.5) / 4.5)
        self.targets = self.contributions.sum(1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        inputs = {m: self.digits[int(self.sources[m][i])]["inputs"][m] for m in self.modalities}
        return {"inputs": inputs, "target": self.targets[i], "index": i}
