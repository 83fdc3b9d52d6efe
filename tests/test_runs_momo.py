"""A MoMo run end to end on a few MNIST digits: run directory, representation metrics and `embed`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from polymodal.cli import main
from polymodal.config import load_config
from polymodal.data.digit_captions import VAL_SIZE
from polymodal.runs.inference import evaluate_saved_run
from polymodal.runs.train import train_run

ONE_STAGE = "strategy.stages=[{data: [image, text, pair], objectives: [mpm, mlm, itc, itm], epochs: 1}]"


@pytest.mark.parametrize("shared", ["true", "false"])  # false: the FLAVA-like dual model (towers + fusion stack)
def test_momo_run_reports_representation_metrics_and_embeds_both_modalities(
    tmp_path: Path, mnist_writer: Callable[..., Path], shared: str
):
    mnist = mnist_writer(tmp_path / "mnist.npz", train=VAL_SIZE + 16, test=16)  # 16 training, VAL_SIZE validation
    overrides = [
        f"data.root={mnist}",
        "data.eval_batch_size=512",
        f"model.options={{shared: {shared}, dim: 16, depth: 1, heads: 2, projection_dim: 8, max_text_length: 32}}",
        ONE_STAGE,
        "trainer.epochs=1",
        "trainer.progress=false",
        "eval.noise_levels=[0.0]",
    ]
    metrics = train_run(load_config("momo-digits", overrides), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["strategy"] == "staged" and set(saved["per_modality"]) == {"image", "text"}
    keys = {"image_probe_acc", "text_probe_acc", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "itm_acc"}
    assert keys <= set(metrics["representation"])
    assert all(0.0 <= metrics["representation"][k] <= 1.0 for k in keys)
    # `polymodal eval` of the saved run recomputes the same representation metrics on the test split.
    assert evaluate_saved_run(tmp_path / "run")["representation"] == pytest.approx(metrics["representation"])
    assert set(evaluate_saved_run(tmp_path / "run", split="val")["representation"]) == set(metrics["representation"])

    with np.load(mnist) as arrays:
        Image.fromarray(arrays["x_test"][0]).save(tmp_path / "digit.png")
    for modality, inputs in (("text", ["le chiffre sept", "seven"]), ("image", [str(tmp_path / "digit.png")])):
        out = tmp_path / f"{modality}.npy"
        assert main(["embed", str(tmp_path / "run"), "--modality", modality, *inputs, "--out", str(out)]) == 0
        # Both modalities embed into the shared contrastive space (projection_dim 8), ready for cross-modal search.
        assert np.load(out).shape == (len(inputs), 8)
