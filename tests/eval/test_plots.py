"""Each plot writes a non-empty PNG and closes its figure."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from polymodal.eval.plots import plot_bars, plot_confusion_matrix, plot_noise_curves, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    data = path.read_bytes()
    assert len(data) > len(PNG_MAGIC)
    assert data.startswith(PNG_MAGIC)
    assert plt.get_fignums() == []


def test_training_curves_from_csv_rows(tmp_path):
    # As csv.DictReader yields them: strings, with validation columns blank on most rows.
    rows = [
        {"epoch": "0", "step": str(step), "train_loss": str(2.0 / (step + 1)), "lr": "0.001", "val_accuracy": ""}
        for step in range(4)
    ]
    rows.append({"epoch": "0", "step": "4", "train_loss": "0.3", "lr": "0.001", "val_accuracy": "0.6", "val_loss": "1"})
    path = plot_training_curves(rows, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    assert_png(path)


def test_training_curves_only_losses(tmp_path):
    rows = [{"step": 1, "train_loss": 1.0}, {"step": 2, "train_loss": 0.5}]
    assert_png(plot_training_curves(rows, tmp_path / "sub" / "loss.png"))


def test_training_curves_reject_rows_without_numbers(tmp_path):
    with pytest.raises(ValueError, match="no numeric column"):
        plot_training_curves([{"step": 1, "note": "warmup"}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no log rows"):
        plot_training_curves([], tmp_path / "x.png")


def test_confusion_matrix(tmp_path):
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    assert_png(plot_confusion_matrix(cm, ["cat", "dog", "bird"], tmp_path / "cm.png"))


def test_confusion_matrix_rejects_wrong_names(tmp_path):
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(np.eye(3), ["a", "b"], tmp_path / "cm.png")


def test_noise_curves(tmp_path):
    levels = [0.0, 0.5, 1.0]
    curves = {"image": [0.9, 0.7, 0.4], "text": [0.9, 0.85, 0.8]}
    assert_png(plot_noise_curves(levels, curves, tmp_path / "noise.png", ylabel="macro F1"))


def test_bars(tmp_path):
    values = {"all": 0.91, "no image": 0.62, "no audio": 0.88, "no text": 0.75}
    assert_png(plot_bars(values, tmp_path / "bars.png", title="missing modality", ylabel="accuracy"))


def test_modality_accuracy_plot_needs_per_modality_scores(tmp_path):
    from polymodal.eval.plots import plot_modality_accuracy

    alone = {"val_image_alone_accuracy": 0.55, "val_audio_alone_accuracy": 0.2}
    rows = [
        {"step": 10, "epoch": 1, "val_accuracy": 0.6, **alone},
        {"step": 20, "epoch": 2, "val_accuracy": 0.7, **alone},
        {"step": 15, "epoch": 2, "train_loss": 1.0},
    ]
    path = plot_modality_accuracy(rows, tmp_path / "laziness.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_modality_accuracy([{"epoch": 1, "val_accuracy": 0.5}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
