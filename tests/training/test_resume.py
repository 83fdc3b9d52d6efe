"""Kill-and-resume through the real command line: the resumed run must equal the uninterrupted one exactly.

Each run trains a tiny avdigits-joint model (24 steps, a checkpoint every 2) in a subprocess. Run B is killed with
SIGKILL three times in a row at seeded checkpoint steps and resumed until it finishes; run C is killed once, its
newest checkpoint corrupted, and resumed. Both must report the same metrics and log rows as run A, which ran without
interruption. A Self-MI run, whose strategy carries state across epochs, is killed in its second epoch and must
also match its uninterrupted twin. Every subprocess has a time limit, so a hung run fails the test instead of
stalling the suite.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polymodal.training.log import read_log

pytestmark = pytest.mark.e2e

# Tiny encoders and inputs shared by every run here, so each takes seconds.
TINY = [
    "model.encoders.image={name: lenet, out_dim: 8, channels: [4, 4]}",
    "model.encoders.audio={name: spec_cnn, out_dim: 8, channels: [4, 4, 4]}",
    "model.encoders.text={name: transformer, dim: 8, depth: 1, heads: 2}",
    "model.head={name: mlp, hidden: 16}",
    "data.image.size=12",
    "data.audio.max_frames=16",
    "data.text.max_length=16",
]
OVERRIDES = [
    "data.max_train_samples=384",
    "data.batch_size=32",
    "data.eval_batch_size=512",
    "trainer.epochs=2",
    "trainer.checkpoint_every=2",
    "trainer.log_every=5",  # not a divisor of checkpoint_every: resumed runs need the saved running sums
    "trainer.progress=false",
    "trainer.device=cpu",
    *TINY,
    "eval.noise_levels=[0.0, 1.0]",
]
# Exact equality needs every run of a comparison to use the same thread count: all inherit the session's
# OMP_NUM_THREADS (one thread unless set, see conftest.py).
TOTAL_STEPS = 24  # 384 / 32 = 12 steps per epoch, 2 epochs
COMPARED = ("val", "test", "per_modality", "missing", "noise", "confusion_matrix", "steps", "epochs", "params")


# Self-MI keeps state across epochs (class centres, generated unimodal labels): killed in its second epoch, the resumed
# run must restore that state from the checkpoint to match. 128 / 32 = 4 steps per epoch, 3 epochs.
SELF_MI = [
    "selfmi-digits",
    "data.max_train_samples=128",
    "data.batch_size=32",
    "data.eval_batch_size=512",
    "trainer.epochs=3",
    "trainer.checkpoint_every=1",
    "trainer.progress=false",
    "trainer.device=cpu",
    *TINY,
    "model.unimodal_head={name: mlp, hidden: 8}",
    "eval.noise_levels=[0.0]",
]


def command(out: Path, resume: bool = False, recipe: list[str] | None = None) -> list[str]:
    args = recipe or ["avdigits-joint", *OVERRIDES]
    return [sys.executable, "-m", "polymodal", "train", *args, "--out", str(out)] + (["--resume"] if resume else [])


def run_to_end(out: Path, resume: bool = False, recipe: list[str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command(out, resume, recipe), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def newest_step(out: Path) -> int:
    steps = [int(p.stem.removeprefix("ckpt-")) for p in (out / "checkpoints").glob("ckpt-*.json")]
    return max(steps, default=0)


def run_and_kill(out: Path, at_step: int, resume: bool = False, recipe: list[str] | None = None) -> None:
    """Starts a run and SIGKILLs it as soon as a checkpoint of step ``at_step`` or later exists."""
    process = subprocess.Popen(command(out, resume, recipe), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while newest_step(out) < at_step and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {stderr.decode()}"
    assert not (out / "metrics.json").exists()
    assert newest_step(out) < TOTAL_STEPS, "killed after training ended: nothing left to resume"


def assert_same_run(a: Path, b: Path) -> None:
    metrics_a = json.loads((a / "metrics.json").read_text())
    metrics_b = json.loads((b / "metrics.json").read_text())
    for key in COMPARED:
        assert metrics_b.get(key) == metrics_a.get(key), key  # regression runs have no confusion matrix
    rows_a = [(r["step"], r["epoch"], r["name"], r["value"]) for r in read_log(a / "log.csv")]
    rows_b = [(r["step"], r["epoch"], r["name"], r["value"]) for r in read_log(b / "log.csv")]
    assert rows_b == rows_a


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run_a"
    run_to_end(out)
    assert json.loads((out / "metrics.json").read_text())["steps"] == TOTAL_STEPS
    assert read_log(out / "log.csv")
    return out


def test_killed_three_times_and_resumed_equals_uninterrupted(uninterrupted: Path, tmp_path: Path) -> None:
    steps = sorted(random.Random(20240611).sample(range(2, TOTAL_STEPS, 2), 3))
    out = tmp_path / "run_b"
    for number, step in enumerate(steps):
        run_and_kill(out, step, resume=number > 0)
    run_to_end(out, resume=True)
    assert_same_run(uninterrupted, out)


def test_resume_falls_back_over_corrupt_newest_checkpoint(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "run_c"
    run_and_kill(out, 14)
    newest = max((out / "checkpoints").glob("ckpt-*.json")).with_suffix(".safetensors")
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    done = run_to_end(out, resume=True)
    assert f"skipping checkpoint: {newest}: checksum mismatch" in done.stderr
    assert_same_run(uninterrupted, out)


def test_self_mi_state_survives_a_kill_in_its_second_epoch(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_to_end(whole, recipe=SELF_MI)
    run_and_kill(killed, 6, recipe=SELF_MI)  # epoch 2 of 3: labels were regenerated from epoch 1 on
    run_to_end(killed, resume=True, recipe=SELF_MI)
    assert_same_run(whole, killed)
