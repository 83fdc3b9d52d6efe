"""Speed end to end: whole AV-MNIST runs and epochs against a plain PyTorch loop, and ``polymodal demo`` by phase.

Usage (from the repository root, on a quiet machine; ``avmnist`` built once by ``polymodal data build avmnist
--mnist mnist.npz --fsdd FSDD --out avmnist``)::

    python benchmarks/speed.py --data avmnist [--repeats 3] [--seed 0]
    python benchmarks/speed.py --smoke          # checks the script on tiny sizes in a few minutes; not results

Every measurement runs in fresh processes (the interpreter's start and the imports count, as for a user):

(a) Whole runs: ``polymodal train avmnist-late`` and ``avmnist-mla`` (final report and plots included) at 4,000
    training samples x 3 epochs and 16,000 x 10, against a plain loop with the structure of the official MLA code
    (``python benchmarks/speed.py plain ...``, which imports only torch and numpy): an epoch of training, then
    validation and test every epoch (fused and each modality alone, from one encoder pass), saving the best weights.
    Same encoder architectures, data arrays, training samples, batch size, optimizer, learning-rate schedule and
    gradient clipping, read from the recipe; one torch thread (``OMP_NUM_THREADS=1``) on both sides. The late-fusion
    plain loop averages the shared head's outputs; the MLA one updates once per modality per batch and fuses by
    entropy weights, without the gradient projection (the official code never runs it; polymodal's does).
    Pairs are interleaved and their order alternates (plain first, then polymodal first, ...); the ratio is the
    median over pairs of polymodal's wall time over the plain loop's.
(b) An epoch of training plus validation, late fusion: from the same runs, each side's own clock (polymodal:
    ``train_seconds`` plus ``timing.validation`` of ``metrics.json``; plain: its training and validation loops),
    per epoch; checkpoints and the plain loop's test pass are left out on both sides.
(c) ``polymodal demo`` cold, end to end, with the machine's default threads: the process's wall time and the phases
    of ``metrics.json``'s ``timing``; ``startup`` is the wall time outside the run (interpreter, imports, config),
    ``import`` the time of ``import polymodal.runs.train`` alone in a fresh process.

Results go to ``benchmarks/results/speed.{md,json}`` (``--out``) with the command, seeds, versions, hardware and the
load average before and after each measurement.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

SPLITS = ("train", "val", "test")
METHODS = {"late": "avmnist-late", "mla": "avmnist-mla"}
SIZES = ((4000, 3), (16000, 10))
SMOKE_SIZES = ((120, 1), (240, 2))
SMOKE_SPLITS = {"train": 240, "val": 60, "test": 60}
SMOKE_DEMO = ["train", "avdigits-joint", "trainer.epochs=1", "data.max_train_samples=256", "data.max_eval_samples=200"]
# What the acceptance asks of each ratio.
# Hand-written analysis below this line in speed.md survives regeneration of the tables above it.
NOTES_MARKER = "<!-- notes: kept when the tables are regenerated -->"
LIMITS = {"whole_run": 1.2, "epoch": 1.05, "demo_seconds": 45.0, "report_share": 0.25}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The phases of metrics.json's ``timing``.
PHASES = ("data", "setup", "train", "validation", "final_report", "diagnosis", "plots", "total")


# ---------------------------------------------------------------------------------------------------------------
# The plain loop: torch and numpy only, as a researcher writes it.


class LeNet(nn.Module):
    """The architecture of polymodal's ``lenet`` encoder."""

    def __init__(self, out_dim: int, channels: list[int], dropout: float) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 16, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))


class SpecCNN(nn.Module):
    """The architecture of polymodal's ``spec_cnn`` encoder."""

    def __init__(self, out_dim: int, channels: list[int], dropout: float, input_pool: int) -> None:
        super().__init__()
        self.input_pool = nn.AvgPool2d(input_pool) if input_pool > 1 else nn.Identity()
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        in_ch = 1
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(2)]
            in_ch = ch
        layers.append(nn.AdaptiveAvgPool2d((2, 2)))
        self.features = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_ch * 4, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(self.input_pool(x)))


def plain_model(settings: dict[str, Any]) -> nn.ModuleDict:
    """Image and audio encoders and the shared linear head of the AV-MNIST recipes."""
    image, audio = settings["image"], settings["audio"]
    return nn.ModuleDict(
        {
            "image": LeNet(image["out_dim"], image["channels"], image["dropout"]),
            "audio": SpecCNN(audio["out_dim"], audio["channels"], audio["dropout"], audio["input_pool"]),
            "head": nn.Linear(image["out_dim"], 10),
        }
    )


class ArraySplit(Dataset):
    """One split of the AV-MNIST arrays in memory: (image (1, 28, 28), audio (1, 112, 112), label) in [0, 1]."""

    def __init__(self, root: Path, split: str, indices: np.ndarray | None = None) -> None:
        arrays = [np.load(root / f"{split}_{name}.npy", mmap_mode="r") for name in ("image", "audio", "label")]
        keep = slice(None) if indices is None else indices
        self.image, self.audio, self.label = (np.array(a[keep]) for a in arrays)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = torch.from_numpy(self.image[i].astype(np.float32) / 255.0)[None]
        audio = torch.from_numpy(self.audio[i].astype(np.float32) / 255.0)[None]
        return image, audio, int(self.label[i])


def lr_factor(settings: dict[str, Any], total_steps: int) -> Any:
    """The recipe's schedule: linear warm-up, then cosine decay (or constant)."""
    warmup = settings["warmup_steps"]
    if settings["warmup_fraction"] is not None:
        warmup = round(settings["warmup_fraction"] * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if settings["schedule"] == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))
        return 1.0

    return factor


def fuse(logits: list[torch.Tensor], method: str) -> torch.Tensor:
    """Late fusion: the mean of the modalities' outputs; MLA: their entropy-weighted sum (weights softmax(-H))."""
    stacked = torch.stack(logits, dim=1)
    if method == "late":
        return stacked.mean(1)
    log_probs = torch.log_softmax(stacked, dim=-1)
    weights = torch.softmax((log_probs.exp() * log_probs).sum(-1), dim=1)  # softmax of minus the entropy
    return (weights.unsqueeze(-1) * stacked).sum(1)


@torch.no_grad()
def plain_evaluate(model: nn.ModuleDict, loader: DataLoader, method: str) -> dict[str, float]:
    """Fused, image-alone and audio-alone accuracy from one encoder pass per modality."""
    model.eval()
    correct = {"fused": 0, "image": 0, "audio": 0}
    total = 0
    for image, audio, label in loader:
        logits = {"image": model["head"](model["image"](image)), "audio": model["head"](model["audio"](audio))}
        logits["fused"] = fuse([logits["image"], logits["audio"]], method)
        for name, out in logits.items():
            correct[name] += int((out.argmax(-1) == label).sum())
        total += len(label)
    model.train()
    return {name: c / total for name, c in correct.items()}


def plain_run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains and scores as the official MLA code does; returns its accuracies and per-epoch clock readings."""
    started = time.perf_counter()
    settings = json.loads(args.settings)
    torch.manual_seed(args.seed)
    root = Path(args.data)
    train = ArraySplit(root, "train", np.load(args.indices))
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train, batch_size=settings["batch_size"], shuffle=True, generator=generator)
    evals = {s: DataLoader(ArraySplit(root, s), batch_size=settings["eval_batch_size"]) for s in ("val", "test")}
    model = plain_model(settings)
    optim = settings["optimizer"]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=optim["lr"], momentum=optim["momentum"], weight_decay=optim["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(settings, len(loader) * args.epochs))
    parts = ("image", "audio")
    # Late fusion: one update on both modalities' mean output; MLA: one update per modality through the shared head.
    updates = [parts] if args.method == "late" else [(m,) for m in parts]
    seconds: dict[str, list[float]] = {"train": [], "validation": [], "test": [], "checkpoint": []}
    best, best_test = -1.0, {}
    setup = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            for image, audio, label in loader:
                inputs = {"image": image, "audio": audio}
                for group in updates:
                    loss = F.cross_entropy(fuse([model["head"](model[m](inputs[m])) for m in group], "late"), label)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
                    optimizer.step()
                scheduler.step()
            t1 = time.perf_counter()
            val = plain_evaluate(model, evals["val"], args.method)
            t2 = time.perf_counter()
            test = plain_evaluate(model, evals["test"], args.method)
            t3 = time.perf_counter()
            if val["fused"] > best:
                best, best_test = val["fused"], test
                torch.save(model.state_dict(), Path(folder) / "best.pt")
            t4 = time.perf_counter()
            for name, a, b in (("train", t0, t1), ("validation", t1, t2), ("test", t2, t3), ("checkpoint", t3, t4)):
                seconds[name].append(round(b - a, 4))
    return {
        "val_accuracy": best,
        "test_accuracy": best_test["fused"],
        "test_alone": {m: best_test[m] for m in parts},
        "train_examples": len(train),
        "threads": torch.get_num_threads(),
        "setup_seconds": round(setup, 4),
        "seconds": seconds,
        "total_seconds": round(time.perf_counter() - started, 4),
    }


# ---------------------------------------------------------------------------------------------------------------
# The driver: polymodal's side, pairing, reporting.


def recipe_settings(method: str) -> dict[str, Any]:
    """What the plain loop takes from the recipe ``avmnist-<method>``, checked to be what it implements."""
    import polymodal

    config = polymodal.load_config(METHODS[method])
    model, trainer, strategy = config.model, config.trainer, config.strategy
    expected = {"late": "joint", "mla": "alternating"}[method]
    if strategy["name"] != expected or model.fusion["name"] != "late" or model.head["name"] != "linear":
        raise SystemExit(f"{METHODS[method]}: the plain loop implements {expected} late fusion with a linear head")
    extras = [strategy.get(k) for k in ("modality_dropout", "unimodal_weight", "lr_scale")]
    if trainer.optimizer.name != "sgd" or any(extras) or strategy.get("combine", "logits") != "logits":
        raise SystemExit(f"{METHODS[method]}: the plain loop implements plain SGD training and logit fusion")
    encoders = {m: dict(model.encoders[m]) for m in ("image", "audio")}
    if [encoders[m].pop("name") for m in encoders] != ["lenet", "spec_cnn"]:
        raise SystemExit(f"{METHODS[method]}: the plain loop implements the lenet and spec_cnn encoders")
    return {
        "batch_size": config.data.batch_size,
        "eval_batch_size": config.data.eval_batch_size,
        **{m: {k: list(v) if isinstance(v, tuple) else v for k, v in e.items()} for m, e in encoders.items()},
        "optimizer": trainer.optimizer.model_dump(include={"lr", "momentum", "weight_decay"}),
        "schedule": trainer.scheduler.name,
        "warmup_steps": trainer.scheduler.warmup_steps,
        "warmup_fraction": trainer.scheduler.warmup_fraction,
        "grad_clip": trainer.grad_clip,
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_process(argv: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    """Runs ``argv`` and returns its wall time and stdout; stops the benchmark with its stderr if it fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def polymodal_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "polymodal", *words]


def whole_run_pair(
    method: str, samples: int, epochs: int, data: Path, seed: int, work: Path, first: str, env: dict[str, str]
) -> dict[str, Any]:
    """One plain run and one polymodal run of the same job, in the order ``first`` says."""
    import polymodal

    # The training samples of the polymodal run, for the plain loop.
    job = [f"data.root={data}", f"data.max_train_samples={samples}", f"trainer.seed={seed}"]
    train = polymodal.load_data(METHODS[method], job).train
    indices = work / f"indices-{samples}-{seed}.npy"
    np.save(indices, np.array(train.indices, dtype=np.int64))
    plain_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "plain",
        "--data",
        str(data),
        "--method",
        method,
        "--indices",
        str(indices),
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--settings",
        json.dumps(recipe_settings(method)),
    ]
    out = work / f"{method}-{samples}x{epochs}"
    ours_cmd = polymodal_argv(
        "train",
        METHODS[method],
        f"data.root={data}",
        f"data.max_train_samples={samples}",
        f"trainer.epochs={epochs}",
        f"trainer.seed={seed}",
        "trainer.progress=false",
        "--out",
        str(out),
    )
    row: dict[str, Any] = {"method": method, "samples": samples, "epochs": epochs, "first": first, "load": [load()]}
    for side in (first, "polymodal" if first == "plain" else "plain"):
        if side == "plain":
            wall, stdout = run_process(plain_cmd, env, "the plain loop")
            row["plain"] = {"wall": round(wall, 3), **json.loads(stdout.strip().splitlines()[-1])}
        else:
            shutil.rmtree(out, ignore_errors=True)
            wall, _ = run_process(ours_cmd, env, "polymodal train")
            metrics = json.loads((out / "metrics.json").read_text())
            shutil.rmtree(out)
            row["polymodal"] = {
                "wall": round(wall, 3),
                "test_accuracy": metrics["test"]["accuracy"],
                "test_alone": {m: v["accuracy"] for m, v in metrics["per_modality"].items()},
                "train_seconds": metrics["train_seconds"],
                "timing": metrics["timing"],
            }
        row["load"].append(load())
    row["commands"] = {"plain": plain_cmd, "polymodal": ours_cmd}
    return row


def epoch_seconds(row: dict[str, Any]) -> tuple[float, float]:
    """(plain, polymodal) seconds of an epoch of training plus validation, each by its own clock."""
    plain = row["plain"]["seconds"]
    ours = row["polymodal"]
    return (
        (sum(plain["train"]) + sum(plain["validation"])) / row["epochs"],
        (ours["train_seconds"] + ours["timing"].get("validation", 0.0)) / row["epochs"],
    )


def summarise_whole(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, size): medians over pairs of each side's wall time, of the pair ratios, and the accuracies."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["samples"], row["epochs"]), []).append(row)
    summary = []
    for (method, samples, epochs), pairs in groups.items():
        ratios = [p["polymodal"]["wall"] / p["plain"]["wall"] for p in pairs]
        epochs_ = [epoch_seconds(p) for p in pairs]
        timing = {k: statistics.median(p["polymodal"]["timing"].get(k, 0.0) for p in pairs) for k in PHASES}
        summary.append(
            {
                "method": method,
                "samples": samples,
                "epochs": epochs,
                "pairs": len(pairs),
                "plain_wall": round(statistics.median(p["plain"]["wall"] for p in pairs), 3),
                "polymodal_wall": round(statistics.median(p["polymodal"]["wall"] for p in pairs), 3),
                "ratio": round(statistics.median(ratios), 4),
                "pair_ratios": [round(r, 4) for r in ratios],
                "plain_epoch": round(statistics.median(e[0] for e in epochs_), 4),
                "polymodal_epoch": round(statistics.median(e[1] for e in epochs_), 4),
                "epoch_ratio": round(statistics.median(e[1] / e[0] for e in epochs_), 4),
                "plain_test_accuracy": pairs[0]["plain"]["test_accuracy"],
                "polymodal_test_accuracy": pairs[0]["polymodal"]["test_accuracy"],
                "polymodal_timing": {k: round(v, 3) for k, v in timing.items()},
                "polymodal_startup": round(
                    statistics.median(p["polymodal"]["wall"] - p["polymodal"]["timing"]["total"] for p in pairs), 3
                ),
            }
        )
    return summary


def import_seconds(env: dict[str, str]) -> float:
    code = "import time; t = time.perf_counter(); import polymodal.runs.train; print(time.perf_counter() - t)"
    return float(run_process([sys.executable, "-c", code], env, "import polymodal.runs.train")[1].strip())


def demo_run(demo: list[str], work: Path, env: dict[str, str], reference: Path | None) -> dict[str, Any]:
    """One cold ``polymodal demo`` (or the smoke stand-in) in a fresh process, phase by phase."""
    out = work / "demo"
    shutil.rmtree(out, ignore_errors=True)
    before = load()
    argv = polymodal_argv(*demo, "--out", str(out))
    wall, _ = run_process(argv, env, "polymodal demo")
    metrics = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)
    timing = metrics["timing"]
    scores = {
        "test": metrics["test"]["accuracy"],
        **{f"{m} alone": v["accuracy"] for m, v in metrics["per_modality"].items()},
        **{f"without {m}": v["accuracy"] for m, v in metrics["missing"].items()},
    }
    result = {
        "command": argv,
        "wall": round(wall, 3),
        "startup": round(wall - timing["total"], 3),
        "import": round(import_seconds(env), 3),
        "timing": timing,
        "train_seconds": metrics["train_seconds"],
        "report_share": round(timing["final_report"] / metrics["train_seconds"], 4),
        "scores": {k: round(v, 4) for k, v in scores.items()},
        "load": [before, load()],
    }
    if reference is not None:
        ref = json.loads(reference.read_text())
        old = {
            "test": ref["test"]["accuracy"],
            **{f"{m} alone": v["accuracy"] for m, v in ref["per_modality"].items()},
            **{f"without {m}": v["accuracy"] for m, v in ref["missing"].items()},
        }
        result["same_as_reference"] = {k: round(v, 4) for k, v in old.items()} == result["scores"]
    return result


def smoke_data(folder: Path) -> Path:
    """A tiny AV-MNIST folder (the build's layout) from the first samples of the packaged one."""
    import polymodal

    folder.mkdir(parents=True, exist_ok=True)
    data = polymodal.load_data(METHODS["late"])  # no data.root: the packaged AV-MNIST
    for split, dataset in zip(SPLITS, (data.train, data.val, data.test), strict=True):
        samples = [dataset[i] for i in range(SMOKE_SPLITS[split])]
        for name in ("image", "audio"):
            arrays = [np.rint(s["inputs"][name][0].numpy() * 255).astype(np.uint8) for s in samples]
            np.save(folder / f"{split}_{name}.npy", np.stack(arrays))
        np.save(folder / f"{split}_label.npy", np.array([int(s["target"]) for s in samples], dtype=np.uint8))
    (folder / "meta.json").write_text(json.dumps({"format": "avmnist-1", "note": "speed.py --smoke"}))
    return folder


def warm_page_cache(folder: Path) -> None:
    """Reads every array file once, so that no measured process is the first to read the data from disk."""
    for path in sorted(folder.glob("*.npy")):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def hardware() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s git repository, or None."""
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    import polymodal

    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": hardware(),
        "versions": {
            "polymodal": polymodal.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "git_commit": git_commit(Path(polymodal.__file__).resolve().parent),
        "seed": args.seed,
        "repeats": args.repeats,
        "smoke": args.smoke,
    }


def markdown(result: dict[str, Any]) -> str:
    meta, acceptance = result["meta"], result["acceptance"]
    lines = [
        "# Speed end to end: polymodal against a plain PyTorch loop" + (" (SMOKE CHECK, not results)" * meta["smoke"]),
        "",
        f"Command: `{meta['command']}`. Date: {meta['date']}. Hardware: {meta['hardware']}. "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f", commit {meta['git_commit'] or 'unknown'}. Seed {meta['seed']}, {meta['repeats']} pair(s) per job. "
        f"Load average (1, 5, 15 min) from {meta['load_before']} before to {meta['load_after']} after.",
        "",
        "How each number is measured: see the docstring of `benchmarks/speed.py`. Whole runs and epochs use one torch",
        "thread on both sides; the demo uses the machine's default.",
        "",
        "## Acceptance",
        "",
        "| check | measured | limit | met |",
        "|---|---|---|---|",
        *(f"| {c['check']} | {c['value']} | {c['limit']} | {'yes' if c['met'] else 'NO'} |" for c in acceptance),
        "",
        "## Whole runs (process wall time, seconds)",
        "",
        "| method | samples x epochs | plain | polymodal | ratio (median) | pair ratios | test acc plain / polymodal "
        "| polymodal startup | " + " | ".join(PHASES) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(PHASES),
    ]
    for s in result["whole_runs"]:
        lines.append(
            f"| {s['method']} | {s['samples']} x {s['epochs']} | {s['plain_wall']} | {s['polymodal_wall']} | "
            f"{s['ratio']} | {', '.join(map(str, s['pair_ratios']))} | {s['plain_test_accuracy']:.4f} / "
            f"{s['polymodal_test_accuracy']:.4f} | {s['polymodal_startup']} | "
            + " | ".join(str(s["polymodal_timing"][k]) for k in PHASES)
            + " |"
        )
    lines += [
        "",
        "## An epoch of training plus validation (seconds per epoch, each side's own clock)",
        "",
        "| method | samples x epochs | plain | polymodal | ratio (median over pairs) |",
        "|---|---|---|---|---|",
        *(
            f"| {s['method']} | {s['samples']} x {s['epochs']} | {s['plain_epoch']} | {s['polymodal_epoch']} | "
            f"{s['epoch_ratio']} |"
            for s in result["whole_runs"]
        ),
        "",
        "## `polymodal demo`, cold, phase by phase (seconds)",
        "",
        "| run | wall | import | startup | " + " | ".join(PHASES) + " | report / training | load before, after |",
        "|---|---|---|---|" + "---|" * len(PHASES) + "---|---|",
    ]
    for k, d in enumerate(result["demo"]):
        phases = " | ".join(str(d["timing"].get(p, "-")) for p in PHASES)
        lines.append(
            f"| {k + 1} | {d['wall']} | {d['import']} | {d['startup']} | {phases} | {d['report_share']} | "
            f"{d['load'][0]}, {d['load'][1]} |"
        )
    if result["demo"]:
        scores = result["demo"][0]["scores"]
        lines += ["", "Demo scores: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()) + "."]
        if "same_as_reference" in result["demo"][0]:
            lines.append(f"Same as the reference to 4 decimals: {result['demo'][0]['same_as_reference']}.")
        lines += ["", f"Demo command: `{shlex.join(result['demo'][0]['command'])}`"]
    lines += ["", "Commands of the first pair of each job:", ""]
    seen = set()
    for row in result["pairs"]:
        key = (row["method"], row["samples"], row["epochs"])
        if key not in seen:
            seen.add(key)
            lines += [f"    {shlex.join(row['commands'][side])}" for side in ("plain", "polymodal")]
    return "\n".join(lines) + "\n"


def acceptance(whole: list[dict[str, Any]], demo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    for s in whole:
        job = f"{s['method']} {s['samples']} x {s['epochs']}"
        checks.append({"check": f"whole run, {job}", "value": s["ratio"], "limit": LIMITS["whole_run"]})
        if s["method"] == "late":
            checks.append({"check": f"epoch, {job}", "value": s["epoch_ratio"], "limit": LIMITS["epoch"]})
    if demo:
        wall = statistics.median(d["wall"] for d in demo)
        share = statistics.median(d["report_share"] for d in demo)
        checks.append({"check": "demo wall seconds", "value": round(wall, 2), "limit": LIMITS["demo_seconds"]})
        checks.append({"check": "demo final report / training", "value": share, "limit": LIMITS["report_share"]})
    return [{**c, "met": c["value"] <= c["limit"]} for c in checks]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plain"]:
        parser = argparse.ArgumentParser(prog="speed.py plain", description="the plain loop (one run, JSON on stdout)")
        for name in ("--data", "--method", "--indices", "--settings"):
            parser.add_argument(name, required=True)
        parser.add_argument("--epochs", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        print(json.dumps(plain_run(parser.parse_args(argv[1:]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a full AV-MNIST folder (`polymodal data build avmnist`)")
    parser.add_argument("--repeats", type=int, default=3, help="pairs per whole-run job (default 3)")
    parser.add_argument("--demo-repeats", type=int, default=1, help="cold demo runs (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--reference", type=Path, help="a metrics.json of the demo to compare its scores with")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results; smoke: a temp folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script; not results")
    args = parser.parse_args(argv)
    if not args.smoke and args.data is None:
        parser.error("--data AVMNIST_DIR is needed (or --smoke)")
    one_thread = {**os.environ, **ONE_THREAD}
    default_threads = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    with tempfile.TemporaryDirectory(prefix="polymodal-speed-") as tmp:
        work = Path(tmp)
        data = smoke_data(work / "avmnist") if args.smoke else args.data.resolve()
        out = args.out or (work / "results" if args.smoke else Path(__file__).parent / "results")
        warm_page_cache(data)
        meta = {**provenance(args), "load_before": load()}
        print(f"load average {meta['load_before']}; {meta['hardware']}", file=sys.stderr)
        pairs = []
        for samples, epochs in SMOKE_SIZES if args.smoke else SIZES:
            for method in args.methods:
                for repeat in range(args.repeats):
                    first = "plain" if repeat % 2 == 0 else "polymodal"
                    row = whole_run_pair(method, samples, epochs, data, args.seed, work, first, one_thread)
                    pairs.append(row)
                    print(
                        f"{method} {samples} x {epochs}: plain {row['plain']['wall']:.1f} s, "
                        f"polymodal {row['polymodal']['wall']:.1f} s (load {row['load'][-1]})",
                        file=sys.stderr,
                    )
        demo = []
        for _ in range(args.demo_repeats):
            demo.append(demo_run(SMOKE_DEMO if args.smoke else ["demo"], work, default_threads, args.reference))
            print(f"demo: {demo[-1]['wall']:.1f} s (load {demo[-1]['load'][1]})", file=sys.stderr)
        meta["load_after"] = load()
        whole = summarise_whole(pairs)
        result = {"meta": meta, "acceptance": acceptance(whole, demo), "whole_runs": whole, "demo": demo}
        result["pairs"] = pairs
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
        text = markdown(result)
        md = out / "speed.md"
        old = md.read_text() if md.is_file() else ""
        notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n"
        md.write_text(text + "\n" + NOTES_MARKER + notes)
        print(text)
        if args.smoke and args.out is None:
            print("(smoke check: results written to a temporary folder, now removed)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
