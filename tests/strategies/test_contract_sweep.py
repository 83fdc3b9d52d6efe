"""Contract sweep: every registered strategy x architecture x fusion x kind of data either validates, then trains one
step and evaluates without error, or is refused when the config is validated, in one line (``ConfigError``).

The data are tiny in-memory image + text samples: classification, regression, or samples that each belong to one of
two tasks (a task table, as ``multitask-digits``). ``SUPPORTED`` is the support matrix the declarations give; a
combination that newly validates or is newly refused fails here.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from polymodal.config import check_data, validate_config
from polymodal.data.collate import Collate
from polymodal.data.sources import DataBundle
from polymodal.data.spec import DataSpec, TaskSpec
from polymodal.errors import ConfigError
from polymodal.models import ARCHITECTURES, FUSIONS, build_model
from polymodal.runs.train import build_strategy
from polymodal.strategies import STRATEGIES

DATA = ("classification", "regression", "tasks")
# Strategy options the sweep needs: staged's stages fit the one epoch and use every objective.
STRATEGY_OPTIONS = {
    "staged": {"stages": [{"data": ["image", "text", "pair"], "objectives": ["mpm", "mlm", "itc", "itm"], "epochs": 1}]}
}
# Each architecture's tiny options; ``multimodal`` has every optional part (projections, unimodal heads, predictors).
MODELS = {
    "multimodal": {
        "options": {"projection_dim": 8},
        "encoders": {
            "image": {"name": "lenet", "out_dim": 8, "channels": [2, 4]},
            "text": {"name": "transformer", "dim": 8, "depth": 1, "heads": 2},
        },
        "head": {"name": "mlp", "hidden": 8},
        "unimodal_head": {"name": "linear"},
        "predictor": {"name": "linear"},
    },
    "momo": {"options": {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "projection_dim": 8, "max_text_length": 8}},
    "multimodel": {"options": {"dim": 8, "heads": 2, "num_experts": 2, "k": 1, "expert_hidden": 8}},
    "exmcr": {"options": {"hidden": 8}},
    "cmcr": {"options": {"dim": 8, "hidden": 8}},
}
EVERY_FUSION = {(f, d) for f in ("concat", "late", "lowrank", "tensor") for d in ("classification", "regression")}
# (strategy, architecture) -> the (fusion, data) combinations that validate and run; every other one is refused.
# Architectures other than multimodal have no fusion: only the default (concat) is accepted for them.
SUPPORTED = {
    ("joint", "multimodal"): EVERY_FUSION,
    ("unimodal", "multimodal"): EVERY_FUSION,
    ("contrastive", "multimodal"): EVERY_FUSION,
    ("alternating", "multimodal"): {("late", "classification"), ("late", "regression")},
    ("self_mi", "multimodal"): {(f, "regression") for f in ("concat", "late", "lowrank", "tensor")},
    ("staged", "momo"): {("concat", "classification")},
    ("multitask", "multimodel"): {("concat", "tasks")},
    ("bridge", "exmcr"): {("concat", "classification"), ("concat", "regression")},
    ("bridge", "cmcr"): {("concat", "classification"), ("concat", "regression")},
}
TASKS = (TaskSpec("shape", "image", "class", ("a", "b")), TaskSpec("echo", "text", "text"))
OUTPUT_LENGTH = 6


def _samples(kind: str, n: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        image = torch.randn(1, 8, 8, generator=g)
        text = torch.randint(2, 258, (3 + i % 4,), generator=g)
        if kind == "tasks":
            target = torch.zeros(1 + OUTPUT_LENGTH, dtype=torch.long)
            target[0] = i % 2
            target[1 : 1 + (1 if i % 2 == 0 else 3)] = torch.tensor([i // 2 % 2] if i % 2 == 0 else [65, 66, 67])
            inputs = {"image": image} if i % 2 == 0 else {"text": text}
        else:
            target = torch.tensor(i % 2) if kind == "classification" else torch.tensor(float(i % 3) - 1.0)
            inputs = {"image": image, "text": text}
        samples.append({"inputs": inputs, "target": target, "index": i})
    return samples


def _bundle(kind: str) -> DataBundle:
    samples = _samples(kind)
    task = "regression" if kind == "regression" else "classification"
    classes = {"classification": ["a", "b"], "tasks": ["shape:a", "shape:b"]}.get(kind)
    tasks = TASKS if kind == "tasks" else ()
    shapes = {"image": (1, 8, 8), "text": ()}
    return DataBundle(
        samples, samples, samples, task, ["image", "text"], shapes, {"text": "int64"}, classes, tasks=tasks
    )


def _config(strategy: str, architecture: str, fusion: str, kind: str) -> dict:
    model = {"name": architecture, **MODELS[architecture], "fusion": {"name": fusion}}
    task = "regression" if kind == "regression" else "classification"
    strategy_spec = {"name": strategy, **STRATEGY_OPTIONS.get(strategy, {})}
    data = {"name": "multitask-digits" if kind == "tasks" else "avdigits", "task": task}
    return {"data": data, "model": model, "strategy": strategy_spec, "trainer": {"epochs": 1}}


def _one_step(strategy, batch: dict) -> None:
    optimizer = torch.optim.SGD(strategy.param_groups(), lr=0.01)
    strategy.model.train()
    strategy.on_epoch_start(0)
    for part in strategy.substeps(batch):
        optimizer.zero_grad(set_to_none=True)
        loss = strategy.step(part)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        strategy.after_backward()
        optimizer.step()
    strategy.model.eval()


def _run(config, kind: str) -> None:
    """One training step and one evaluation: the strategy's own, else ``predict`` on a batch."""
    if config.model.name in ("exmcr", "cmcr"):  # a bridge trains on pseudo-pairs of two spaces' embeddings
        model = build_model(config.model, {"base": (8,), "leaf": (6,)}, 1)
        strategy = STRATEGIES.build(config.strategy, model=model, data=DataSpec("bridge", ("image", "audio", "text")))
        widths = {"base": {"image": 8, "text": 8}, "leaf": {"audio": 6, "text": 6}}
        batch = {side: {m: torch.randn(4, w) for m, w in ms.items()} for side, ms in widths.items()}
        _one_step(strategy, batch)
        assert set(strategy.evaluate([batch], "cpu")["metrics"]) == {"loss"}
        return
    bundle = _bundle(kind)
    strategy = build_strategy(config, bundle)
    batch = Collate(bundle.shapes, {"text": torch.long})(bundle.train)
    _one_step(strategy, batch)
    loader = DataLoader(bundle.val, batch_size=4, collate_fn=Collate(bundle.shapes, {"text": torch.long}))
    with torch.no_grad():
        own = strategy.evaluate(loader, "cpu")
        if own is not None:
            assert own["metrics"]
            return
        outputs = strategy.predict(batch)
    assert outputs.shape == (len(bundle.train), bundle.out_dim) and bool(torch.isfinite(outputs).all())


def _outcome(strategy: str, architecture: str, fusion: str, kind: str) -> str | None:
    """None when the combination validates and runs; the refusal otherwise."""
    try:
        config = validate_config(_config(strategy, architecture, fusion, kind), "sweep")
        check_data(config, _bundle(kind).spec)
    except ConfigError as err:
        return str(err)
    _run(config, kind)
    return None


def test_the_sweep_covers_every_registered_component():
    assert set(MODELS) == set(ARCHITECTURES.names())
    assert {f for f, _ in EVERY_FUSION} == set(FUSIONS.names())
    assert {s for s, _ in SUPPORTED} == set(STRATEGIES.names())


@pytest.mark.parametrize("architecture", sorted(MODELS))
@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_each_combination_runs_or_is_refused_in_one_line(strategy: str, architecture: str):
    torch.manual_seed(0)
    ran, refused = set(), {}
    for fusion in FUSIONS.names():
        for kind in DATA:
            outcome = _outcome(strategy, architecture, fusion, kind)
            if outcome is None:
                ran.add((fusion, kind))
            else:
                refused[(fusion, kind)] = outcome
    assert ran == SUPPORTED.get((strategy, architecture), set()), refused
    for message in refused.values():  # one line that opens with the setting refused
        assert "\n" not in message and message.removeprefix("sweep: ").startswith(("strategy.", "model.")), message
