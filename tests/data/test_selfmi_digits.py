import pytest
import torch

from polymodal.data.avdigits import AVDigits
from polymodal.data.selfmi_digits import WEIGHTS, SelfMIDigits


def test_target_is_the_weighted_sum_of_independent_digits():
    digits = AVDigits("val")
    data = SelfMIDigits(digits, seed=1)
    sample = data[5]
    image_digit = int(digits.targets[data.sources["image"][5]])
    audio_digit = int(digits.targets[data.sources["audio"][5]])
    text_digit = int(digits.text_targets[data.sources["text"][5]])
    expected = 1.5 * (image_digit - 4.5) / 4.5 + 1.0 * (audio_digit - 4.5) / 4.5 + 0.5 * (text_digit - 4.5) / 4.5
    assert sample["target"].item() == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(sample["inputs"]["audio"], digits[int(data.sources["audio"][5])]["inputs"]["audio"])
    # Independent pairing: the modalities' digits are nearly uncorrelated, and the target spans [-3, 3].
    corr = torch.corrcoef(data.contributions.T)
    assert corr[0, 1].abs() < 0.1 and corr[0, 2].abs() < 0.1
    assert data.targets.abs().max() <= sum(WEIGHTS.values())
