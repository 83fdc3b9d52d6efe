"""Batch transforms and robustness drivers on a tiny hand-made batch with a predict function that needs no model."""

import pytest
import torch

from polymodal.eval.metrics import accuracy
from polymodal.eval.robustness import (
    add_noise,
    collect,
    drop_modalities,
    keep_only,
    missing_modality_scores,
    noise_curves,
    single_modality_scores,
)

MODALITIES = ("image", "audio", "text", "features")


def make_batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "inputs": {
            "image": torch.randn(3, 2, 4, 4, generator=generator),
            "audio": torch.randn(3, 1, 4, 6, generator=generator),
            "text": torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [0, 0, 0, 0]]),
            "features": torch.randn(3, 5, 2, generator=generator) * torch.tensor([1, 1, 0]).view(3, 1, 1),
        },
        "present": {
            "image": torch.tensor([True, True, False]),
            "audio": torch.tensor([True, True, True]),
            "text": torch.tensor([True, True, False]),
            "features": torch.tensor([True, True, False]),
        },
        "lengths": {"text": torch.tensor([3, 2, 0]), "features": torch.tensor([5, 3, 0])},
        "target": torch.tensor([0, 1, 2]),
        "index": torch.tensor([10, 11, 12]),
    }


def presence_logits(batch: dict) -> torch.Tensor:
    """Logits (B, 4): one column per modality, 1 where that modality is present."""
    return torch.stack([batch["present"][m].float() for m in MODALITIES], dim=1)


def input_sum(batch: dict) -> torch.Tensor:
    """Predictions (B,) that depend on every input value."""
    return sum(batch["inputs"][m].flatten(1).float().sum(1) for m in MODALITIES)


def clone(batch: dict) -> dict:
    return {k: {m: t.clone() for m, t in v.items()} if isinstance(v, dict) else v.clone() for k, v in batch.items()}


def assert_batch_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert actual[key].keys() == value.keys()
            for m in value:
                torch.testing.assert_close(actual[key][m], value[m], rtol=0, atol=0)
        else:
            torch.testing.assert_close(actual[key], value, rtol=0, atol=0)


def test_drop_modalities_zeroes_and_marks_missing():
    batch = make_batch()
    original = clone(batch)
    out = drop_modalities(batch, ["image", "text"])
    for m in ("image", "text"):
        assert not out["present"][m].any()
        assert not out["inputs"][m].any()
    torch.testing.assert_close(out["lengths"]["text"], torch.zeros(3, dtype=torch.long))
    for m in ("audio", "features"):
        assert out["inputs"][m] is batch["inputs"][m]
        assert out["present"][m] is batch["present"][m]
    assert out["target"] is batch["target"]
    assert_batch_equal(batch, original)


def test_keep_only_drops_the_others():
    batch = make_batch()
    original = clone(batch)
    out = keep_only(batch, "audio")
    torch.testing.assert_close(presence_logits(out), torch.tensor([[0.0, 1.0, 0.0, 0.0]] * 3))
    torch.testing.assert_close(out["inputs"]["audio"], batch["inputs"]["audio"])
    assert_batch_equal(batch, original)


def test_unknown_modality_is_rejected():
    with pytest.raises(ValueError, match="batch has no modality 'video'"):
        drop_modalities(make_batch(), ["video"])


@pytest.mark.parametrize("modality", MODALITIES)
def test_noise_level_zero_is_identity(modality):
    batch = make_batch()
    out = add_noise(batch, modality, 0.0, torch.Generator().manual_seed(0))
    assert_batch_equal(out, batch)


@pytest.mark.parametrize("modality", ["image", "audio", "features"])
def test_noise_changes_only_real_values_and_does_not_mutate(modality):
    batch = make_batch()
    original = clone(batch)
    out = add_noise(batch, modality, 0.5, torch.Generator().manual_seed(0))
    assert_batch_equal(batch, original)
    changed = out["inputs"][modality] != batch["inputs"][modality]
    present = batch["present"][modality]
    assert changed[present].any()
    assert not changed[~present].any()
    if modality == "features":
        assert not changed[1, 3:].any()  # padding after length 3 stays zero


def test_noise_std_scales_with_level_and_data_std():
    batch = make_batch()
    batch["inputs"]["image"] = batch["inputs"]["image"] * 10
    batch["present"]["image"] = torch.ones(3, dtype=torch.bool)
    x = batch["inputs"]["image"]
    out = add_noise(batch, "image", 0.5, torch.Generator().manual_seed(0))
    noise = out["inputs"]["image"] - x
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 0.5 * x.double().std(unbiased=False)
    torch.testing.assert_close(noise, expected.float(), rtol=1e-4, atol=1e-4)


def test_text_noise_changes_only_non_padding_tokens():
    batch = make_batch()
    original = clone(batch)
    out = add_noise(batch, "text", 1.0, torch.Generator().manual_seed(0))
    assert_batch_equal(batch, original)
    text, noisy = batch["inputs"]["text"], out["inputs"]["text"]
    padding = text == 0
    assert torch.equal(noisy[padding], text[padding])
    assert ((noisy[~padding] >= 2) & (noisy[~padding] <= 257)).all()
    assert noisy.dtype == torch.long
    # Level >= 1 replaces every real token; few of 5 should keep their id by chance in [2, 257].
    assert (noisy[~padding] != text[~padding]).sum() >= 4


def test_noise_is_reproducible_with_seed():
    batch = make_batch()
    for modality in ("audio", "text"):
        first = add_noise(batch, modality, 0.7, torch.Generator().manual_seed(3))
        second = add_noise(batch, modality, 0.7, torch.Generator().manual_seed(3))
        third = add_noise(batch, modality, 0.7, torch.Generator().manual_seed(4))
        torch.testing.assert_close(first["inputs"][modality], second["inputs"][modality], rtol=0, atol=0)
        assert not torch.equal(first["inputs"][modality], third["inputs"][modality])


def test_collect_concatenates_and_applies_transform():
    loader = [make_batch(), make_batch()]
    outputs, targets = collect(presence_logits, loader, transform=lambda b: drop_modalities(b, ["audio"]))
    assert outputs.shape == (6, 4)
    assert not outputs[:, 1].any()
    torch.testing.assert_close(targets, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert not outputs.requires_grad


def test_collect_runs_without_gradients():
    weight = torch.ones(4, requires_grad=True)
    outputs, _ = collect(lambda b: presence_logits(b) @ weight, [make_batch()])
    assert not outputs.requires_grad


def test_collect_rejects_empty_loader():
    with pytest.raises(ValueError, match="no batches"):
        collect(presence_logits, [])


def test_missing_and_single_modality_scores():
    loader = [make_batch()]

    def mean_presence(column):
        return lambda outputs, targets: float(outputs[:, column].mean())

    # Score = how often image (column 0) is present: 2/3 normally, 0 once image is dropped.
    missing = missing_modality_scores(presence_logits, loader, ["image", "audio"], mean_presence(0))
    assert missing == pytest.approx({"image": 0.0, "audio": 2 / 3})
    # Score = how often audio (column 1) is present: only keeping audio leaves it.
    single = single_modality_scores(presence_logits, loader, ["image", "audio"], mean_presence(1))
    assert single == pytest.approx({"image": 0.0, "audio": 1.0})


def test_scores_with_accuracy():
    # Logits argmax = first present modality in MODALITIES order; target [0, 1, 2].
    loader = [make_batch()]
    score = lambda outputs, targets: accuracy(outputs.argmax(-1), targets)  # noqa: E731
    single = single_modality_scores(presence_logits, loader, ["audio"], score)
    assert single["audio"] == pytest.approx(1 / 3)  # argmax is 1 for every sample; only sample 1 has target 1


def test_noise_curves_are_reproducible_and_start_clean():
    loader = [make_batch()]
    score = lambda outputs, targets: float(outputs.sum())  # noqa: E731
    levels = [0.0, 0.5, 1.0]
    curves = noise_curves(input_sum, loader, ["image", "text"], levels, score, seed=1)
    again = noise_curves(input_sum, loader, ["image", "text"], levels, score, seed=1)
    assert curves == again
    assert set(curves) == {"image", "text"} and all(len(v) == 3 for v in curves.values())
    clean = float(input_sum(make_batch()).sum())
    assert curves["image"][0] == pytest.approx(clean) and curves["text"][0] == pytest.approx(clean)
    assert curves["image"][1] != pytest.approx(clean)


def test_negative_noise_level_is_rejected():
    with pytest.raises(ValueError, match="noise level must be >= 0"):
        add_noise(make_batch(), "image", -0.1, torch.Generator())


def test_each_pass_names_itself_in_its_progress(capsys, monkeypatch):
    monkeypatch.setattr("polymodal.progress.PLAIN_INTERVAL", 0.0)  # a plain line after every batch
    loader = [make_batch()]
    score = lambda outputs, targets: float(outputs.sum())  # noqa: E731
    single_modality_scores(input_sum, loader, ["image", "text"], score, show_progress=True)
    missing_modality_scores(input_sum, loader, ["audio"], score, show_progress=True)
    noise_curves(input_sum, loader, ["image", "text"], [0.0, 0.5], score, show_progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "image alone",
        "text alone",
        "without audio",
        "no noise",
        "noise 0.5 on image",
        "noise 0.5 on text",
    ]
    assert all(line.split("  ")[1] == "1/1 batches (100%)" for line in lines)
    noise_curves(input_sum, loader, ["image"], [0.0, 0.5], score)
    assert capsys.readouterr().err == ""  # no progress unless asked


@pytest.mark.parametrize("split", [False, True])
def test_validation_metrics_add_the_robust_mean_of_fused_and_each_alone(split):
    from polymodal.eval.evaluate import validation_metrics

    class RightWithA:
        """Right when "a" (the target) is present and always class 0 otherwise; splits into features (the inputs)."""

        def predict(self, batch):
            return self.predict_features(batch["inputs"], batch["present"])

        def encode(self, batch):
            return dict(batch["inputs"]) if split else None

        def predict_features(self, features, present):
            label = features["a"][:, 0].long()
            right = torch.nn.functional.one_hot(label, 2).float()
            wrong = torch.nn.functional.one_hot(torch.zeros_like(label), 2).float()
            return torch.where(present["a"][:, None], right, wrong)

    target = torch.tensor([0, 1, 1, 1])
    batch = {
        "inputs": {"a": target[:, None].float(), "b": torch.zeros(4, 1)},
        "present": {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)},
        "target": target,
    }
    metrics = validation_metrics(RightWithA(), [batch], "classification", ["a", "b"], per_modality=True)
    assert metrics["a_alone_accuracy"] == 1.0 and metrics["b_alone_accuracy"] == 0.25
    assert metrics["robust_accuracy"] == pytest.approx((1.0 + 1.0 + 0.25) / 3)
    fused_only = validation_metrics(RightWithA(), [batch], "classification", ["a", "b"], per_modality=False)
    assert fused_only["robust_accuracy"] == fused_only["accuracy"] == 1.0
