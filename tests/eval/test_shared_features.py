"""Every modality subset scored from one encoder pass equals the same subset scored by a pass of ``predict`` of its
own, on every architecture, fusion and strategy that splits into per-modality features; the others fall back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from polymodal.config import validate_config
from polymodal.data.collate import Collate
from polymodal.data.spec import DataSpec, TaskSpec
from polymodal.eval import robustness
from polymodal.eval.evaluate import full_report, validation_metrics
from polymodal.eval.robustness import SubsetScorer
from polymodal.models import build_model
from polymodal.models.multimodel import MultiModel
from polymodal.strategies import STRATEGIES, JointStrategy
from polymodal.strategies.base import Strategy

SHAPES = {"image": (1, 8, 8), "audio": (1, 8, 8), "text": (), "features": (3,)}
DTYPES = {"text": torch.long}
CLASSES = 3
LEVELS = [0.0, 0.5, 2.0]
ENCODERS = {
    "image": {"name": "lenet", "out_dim": 8, "channels": [2, 4]},
    "audio": {"name": "spec_cnn", "out_dim": 8, "channels": [2, 2, 4]},
    "text": {"name": "transformer", "dim": 8, "depth": 1, "heads": 2},
    "features": {"name": "transformer", "dim": 8, "depth": 1, "heads": 2},
}


def dataset(modalities: list[str], task: str, n: int = 19) -> list[dict[str, Any]]:
    """Random samples; some lack a modality, sample 0 has the first one only, and one present text is empty."""
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        inputs: dict[str, Any] = {}
        for j, m in enumerate(modalities):
            if (i + j) % 4 == 0 or (i == 0 and j > 0):
                continue
            if m == "text":
                inputs[m] = torch.randint(2, 258, (0 if i == 5 else 1 + i % 6,), generator=g)
            elif m == "features":
                inputs[m] = torch.randn(1 + i % 5, 3, generator=g)
            else:
                inputs[m] = torch.randn(SHAPES[m], generator=g)
        target = (
            torch.randint(0, CLASSES, (), generator=g) if task == "classification" else torch.randn((), generator=g)
        )
        samples.append({"inputs": inputs, "target": target, "index": i})
    return samples


def loader(modalities: list[str], task: str) -> DataLoader:
    collate = Collate({m: SHAPES[m] for m in modalities}, DTYPES)
    return DataLoader(dataset(modalities, task), batch_size=8, collate_fn=collate)


def build(model: dict[str, Any], strategy: dict[str, Any], modalities: list[str], task: str) -> Strategy:
    config = validate_config(
        {"data": {"task": task}, "model": model, "strategy": strategy, "trainer": {"epochs": 12}}, "test"
    )
    torch.manual_seed(0)
    built = build_model(config.model, {m: SHAPES[m] for m in modalities}, CLASSES if task == "classification" else 1)
    built.eval()
    return STRATEGIES.build(config.strategy, model=built, data=DataSpec(task, tuple(modalities)))


def multimodal(fusion: str, modalities: list[str], **extra: Any) -> dict[str, Any]:
    encoders = {m: ENCODERS[m] for m in modalities}
    return {"encoders": encoders, "fusion": {"name": fusion}, "head": {"name": "mlp", "hidden": 8}, **extra}


FOUR = ["image", "audio", "text", "features"]
MOMO = {"name": "momo", "options": {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "projection_dim": 4}}
CASES = {
    "joint-concat": (multimodal("concat", FOUR), {"name": "joint"}, FOUR, "classification"),
    "joint-late": (multimodal("late", FOUR), {"name": "joint"}, FOUR, "classification"),
    "joint-tensor": (multimodal("tensor", FOUR), {"name": "joint"}, FOUR, "classification"),
    "joint-lowrank": (multimodal("lowrank", FOUR), {"name": "joint"}, FOUR, "classification"),
    "joint-regression": (multimodal("concat", FOUR), {"name": "joint"}, FOUR, "regression"),
    "alternating-logits": (multimodal("late", FOUR), {"name": "alternating"}, FOUR, "classification"),
    "alternating-probabilities": (
        multimodal("late", FOUR),
        {"name": "alternating", "combine": "probabilities"},
        FOUR,
        "classification",
    ),
    "alternating-regression": (multimodal("late", FOUR), {"name": "alternating"}, FOUR, "regression"),
    "unimodal": (multimodal("concat", FOUR), {"name": "unimodal", "modality": "text"}, FOUR, "classification"),
    "self_mi": (
        multimodal("concat", FOUR, unimodal_head={"name": "linear"}, predictor={"name": "linear"}),
        {"name": "self_mi"},
        FOUR,
        "regression",
    ),
    "staged-shared": (MOMO, {"name": "staged"}, ["image", "text"], "classification"),
    "staged-dual": (
        {**MOMO, "options": {**MOMO["options"], "shared": False}},
        {"name": "staged"},
        ["image", "text"],
        "classification",
    ),
}


def predict_only(strategy: Any) -> SimpleNamespace:
    """The strategy as a predictor that cannot split: every subset is a pass of ``predict`` (the reference)."""
    return SimpleNamespace(predict=strategy.predict, encode=lambda batch: None)


def recorder() -> tuple[list[torch.Tensor], Any]:
    """A score that keeps every outputs tensor it is given, so whole outputs can be compared, not a summary."""
    seen: list[torch.Tensor] = []

    def score(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        seen.append(outputs)
        return 0.0

    return seen, score


def all_outputs(scorer: SubsetScorer, modalities: list[str]) -> list[torch.Tensor]:
    seen, score = recorder()
    scorer.alone(modalities, score)
    scorer.without(modalities, score)
    scorer.noise_curves(modalities, LEVELS, score, seed=3)
    return [scorer.outputs, *seen]


def flat(report: Any, prefix: str = "") -> dict[str, Any]:
    """A nested report as ``{"a.b.0": value}``."""
    if isinstance(report, dict | list):
        items = report.items() if isinstance(report, dict) else enumerate(report)
        return {k: v for key, value in items for k, v in flat(value, f"{prefix}{key}.").items()}
    return {prefix: report}


@pytest.mark.parametrize("case", list(CASES))
def test_every_subset_from_shared_features_equals_its_own_pass(case):
    model, spec, modalities, task = CASES[case]
    strategy = build(model, spec, modalities, task)
    data = loader(modalities, task)
    shared = SubsetScorer(strategy, data)
    reference = SubsetScorer(predict_only(strategy), data)
    assert shared.batches is not None and reference.batches is None
    expected = all_outputs(reference, modalities)
    actual = all_outputs(shared, modalities)
    assert len(actual) == len(expected) == 1 + 2 * len(modalities) + 1 + len(modalities) * (len(LEVELS) - 1)
    for got, want in zip(actual, expected, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)
    # The report and the per-epoch validation metrics built on them are the same numbers.
    args = (data, task, modalities, None, LEVELS, 3, "cpu", None)
    assert flat(full_report(strategy, *args)) == pytest.approx(flat(full_report(predict_only(strategy), *args)))
    validation = validation_metrics(strategy, data, task, modalities, per_modality=True)
    assert validation == pytest.approx(validation_metrics(predict_only(strategy), data, task, modalities, True))


def test_a_split_encodes_each_batch_once_and_a_noise_level_the_noised_modality_only():
    model, spec, modalities, task = CASES["joint-concat"]
    strategy = build(model, spec, modalities, task)
    data = loader(modalities, task)
    calls: list[tuple[str, ...]] = []
    encode = strategy.encode
    strategy.encode = lambda batch: calls.append(tuple(sorted(batch["inputs"]))) or encode(batch)  # type: ignore[method-assign]
    scorer = SubsetScorer(strategy, data)
    scorer.alone(modalities, lambda o, t: 0.0)
    scorer.without(modalities, lambda o, t: 0.0)
    batches = len(data)
    assert calls == [tuple(sorted(modalities))] * (2 * batches)  # each batch, then its missing sample
    calls.clear()
    scorer.noise_curves(["audio"], [0.0, 1.0], lambda o, t: 0.0)
    assert calls == [("audio",)] * batches


def test_noise_passes_read_the_kept_inputs_or_the_loader_alike(monkeypatch):
    model, spec, modalities, task = CASES["joint-concat"]
    strategy = build(model, spec, modalities, task)
    reads = []

    class Counted(DataLoader):
        def __iter__(self):
            reads.append(1)
            return super().__iter__()

    data = loader(modalities, task)
    counted = Counted(data.dataset, batch_size=8, collate_fn=data.collate_fn)
    kept = SubsetScorer(strategy, counted)
    curves = kept.noise_curves(modalities, LEVELS, lambda o, t: float(o.sum()))
    assert kept.inputs is not None and len(reads) == 1  # the noise passes did not read the loader
    monkeypatch.setattr(robustness, "KEEP_INPUTS_BYTES", 0)
    read_again = SubsetScorer(strategy, counted)
    assert read_again.inputs is None
    assert read_again.noise_curves(modalities, LEVELS, lambda o, t: float(o.sum())) == curves
    assert len(reads) == 2 + len(modalities) * (len(LEVELS) - 1)


def test_a_predictor_that_cannot_split_is_scored_one_pass_per_subset():
    class OwnPredict(JointStrategy):  # overrides predict only: its outputs are not the model's fusion
        def predict(self, batch: dict[str, Any]) -> torch.Tensor:
            return -super().predict(batch)

    model, _, modalities, task = CASES["joint-concat"]
    strategy = OwnPredict(build(model, {"name": "joint"}, modalities, task).model, DataSpec(task), 0.0, 0.0)
    assert strategy.encode(next(iter(loader(modalities, task)))) is None
    scorer = SubsetScorer(strategy, loader(modalities, task))
    assert scorer.batches is None
    reference = SubsetScorer(predict_only(strategy), loader(modalities, task))
    for got, want in zip(all_outputs(scorer, modalities), all_outputs(reference, modalities), strict=True):
        torch.testing.assert_close(got, want)


def test_architectures_without_a_fusion_do_not_split():
    class Opaque(torch.nn.Module):  # a model with a forward and no encode / fuse (e.g. a user's own)
        def forward(self, inputs, present, lengths):
            return inputs["features"].sum(1)

    assert Strategy(Opaque(), DataSpec("regression")).encode({"inputs": {}, "present": {}}) is None
    multimodel = MultiModel(1, None, 16, 5, 16, 2, 4, 2, 16, True, True, 0.0)
    tasks = (TaskSpec("digit", "image", "class", ("a", "b")),)
    strategy = STRATEGIES.build(
        STRATEGIES.validate({"name": "multitask"}, "s"), model=multimodel, data=DataSpec("classification", tasks=tasks)
    )
    assert strategy.encode({"inputs": {}, "present": {}}) is None
