"""The multitask strategy (MultiModel): per-task substeps, learning on two tasks, per-task evaluation and a run."""

import json

import torch

from polymodal.config import load_config
from polymodal.data.collate import Collate
from polymodal.data.multitask_digits import OUTPUT_LENGTH, TASKS
from polymodal.data.spec import DataSpec
from polymodal.models.multimodel import MultiModel
from polymodal.runs.inference import evaluate_saved_run
from polymodal.runs.train import train_run
from polymodal.strategies import STRATEGIES
from polymodal.strategies.multitask import MultitaskStrategy

MNIST, PARSE = [t.name for t in TASKS].index("mnist"), [t.name for t in TASKS].index("parse")


def _target(task: int, output: list[int]) -> torch.Tensor:
    target = torch.zeros(1 + OUTPUT_LENGTH, dtype=torch.long)
    target[0] = task
    target[1 : 1 + len(output)] = torch.tensor(output)
    return target


def _batch() -> dict:
    samples = [
        {"inputs": {"image": torch.randn(1, 8, 8)}, "target": _target(MNIST, [i % 2]), "index": i} for i in range(3)
    ] + [
        {"inputs": {"text": torch.randint(2, 258, (3 + i,))}, "target": _target(PARSE, [51 + i, 52]), "index": 3 + i}
        for i in range(3)
    ]
    return Collate({"image": (1, 8, 8), "text": ()}, {"text": torch.long})([samples[i] for i in (0, 3, 1, 4, 2, 5)])


def _strategy():
    model = MultiModel(1, None, 16, 5, 16, 2, 4, 2, 16, True, True, 0.0)
    return STRATEGIES.build(
        STRATEGIES.validate({"name": "multitask"}, "s"), model=model, data=DataSpec("classification", tasks=TASKS)
    )


def test_substeps_split_a_mixed_batch_into_single_task_parts():
    parts = _strategy().substeps(_batch())
    assert [p["task"] for p in parts] == [MNIST, PARSE]
    assert parts[0]["input"].shape == (3, 1, 8, 8) and parts[0]["lengths"] is None
    assert parts[1]["input"].shape == (3, 5) and parts[1]["lengths"].tolist() == [3, 4, 5]
    assert all((p["target"][:, 0] == p["task"]).all() for p in parts)


def test_both_tasks_learn_and_predictions_are_packed_like_targets():
    strategy, batch = _strategy(), _batch()
    optimizer = torch.optim.Adam(strategy.model.parameters(), lr=5e-3)
    first, last = {}, {}
    for _ in range(40):
        for part in strategy.substeps(batch):
            out = strategy.step(part)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            name = f"{TASKS[part['task']].name}_loss"
            first.setdefault(name, float(out[name].detach()))
            last[name] = float(out[name].detach())
            assert float(out["balance"].detach()) >= 0
    assert last["mnist_loss"] < 0.2 * first["mnist_loss"] and last["parse_loss"] < 0.2 * first["parse_loss"]
    strategy.model.eval()
    predicted = strategy.predict(batch)
    assert predicted.shape == batch["target"].shape
    torch.testing.assert_close(predicted, batch["target"])  # memorised: classes and bytes, end byte included
    report = strategy.evaluate([batch], "cpu")
    assert report["metrics"] == {"mnist_accuracy": 1.0, "parse_exact_match": 1.0, "score": 1.0}
    shares = report["expert_utilisation"]["encoder"]
    assert list(shares) == ["mnist", "parse"] and all(abs(sum(s) - 1) < 1e-6 for s in shares.values())


def test_a_single_task_run_writes_per_task_metrics_and_the_expert_plot_and_evaluates_again(tmp_path):
    overrides = [
        f"data.root={tmp_path}",  # text tasks only: nothing is read from the data folder
        "data.tasks=[parse]",
        "data.max_train_samples=64",
        "model.options.dim=16",
        "model.options.heads=2",
        "model.options.expert_hidden=16",
        "trainer.epochs=1",
        "trainer.progress=false",
    ]
    metrics = train_run(load_config("multimodel-digits", overrides), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["strategy"] == "multitask" and saved["train_examples"] == 64
    assert list(saved["tasks"]) == ["parse"] and saved["tasks"]["parse"]["examples"] == 200
    assert set(saved["test"]) == {"parse_exact_match", "score"} and set(saved["val"]) == set(saved["test"])
    assert set(saved["expert_utilisation"]) == {"encoder", "decoder"}
    assert (tmp_path / "run" / "plots" / "expert_utilisation.png").is_file()
    assert metrics["test"] == saved["test"]
    again = evaluate_saved_run(tmp_path / "run")  # `polymodal eval` scores the saved run the same way
    assert again["test"] == saved["test"] and again["tasks"] == saved["tasks"]


def test_round_robin_sampling_gives_the_trainer_single_task_batches(tmp_path, monkeypatch):
    parts_per_batch = []
    substeps = MultitaskStrategy.substeps

    def spy(self, batch):
        parts = substeps(self, batch)
        if self.model.training:  # evaluation splits its batches by task too
            parts_per_batch.append(len(parts))
        return parts

    monkeypatch.setattr(MultitaskStrategy, "substeps", spy)
    overrides = [
        f"data.root={tmp_path}",  # text tasks only
        "data.tasks=[parse, translate]",
        "data.max_train_samples=48",
        "data.batch_size=8",
        "model.options.dim=16",
        "model.options.heads=2",
        "model.options.expert_hidden=16",
        "strategy.sampling=round_robin",
        "trainer.epochs=1",
        "trainer.progress=false",
        "eval.noise_levels=[0.0]",
    ]
    metrics = train_run(load_config("multimodel-digits", overrides), tmp_path / "run")
    assert parts_per_batch and set(parts_per_batch) == {1}  # every batch holds one task
    assert metrics["steps"] == len(parts_per_batch)
