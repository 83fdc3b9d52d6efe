"""Each plot writes a non-empty PNG and closes its figure; the figures share colours, titles and markers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.ticker import MaxNLocator

from polymodal.data.vocab import MODALITIES
from polymodal.eval import plots
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


@pytest.fixture
def figures(monkeypatch):
    """Every figure the plot functions save, kept for inspection (a closed figure still holds its artists)."""
    saved = []
    save = plots._save

    def keep(fig, path):
        saved.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def lines_by_label(fig) -> dict:
    return {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}


def wide_log(epochs: int = 3, steps_per_epoch: int = 4) -> list[dict]:
    """Wide log rows as ``wide_rows`` gives them: training rows every 2 steps, validation rows at each epoch end."""
    rows = []
    for epoch in range(1, epochs + 1):
        for step in range((epoch - 1) * steps_per_epoch + 2, epoch * steps_per_epoch + 1, 2):
            rows.append({"step": step, "epoch": epoch, "train_loss": 2.0 / step, "train_scale": 14 + step, "lr": 1e-3})
        rows[-1].update(
            {
                "val_accuracy": 0.2 * epoch,
                "val_image_alone_accuracy": 0.15 * epoch,
                "val_audio_alone_accuracy": 0.1,
                "val_mae": 1.0 / epoch,
            }
        )
    return rows


def test_modality_color_is_one_fixed_colour_per_modality():
    colors = [plots.modality_color(m) for m in MODALITIES]
    assert None not in colors and len(set(colors)) == len(MODALITIES)
    for name in ("audio", "without audio", "val_audio_alone_accuracy", "val_audio_to_text_r1", "noise on audio"):
        assert plots.modality_color(name) == plots.MODALITY_COLORS["audio"], name
    assert plots.modality_color("fused") == plots.modality_color("all")
    assert plots.modality_color("val_macro_f1") is None


@pytest.mark.parametrize(
    ("name", "panel"),
    [
        ("lr", "scalar"),
        ("train_scale", "scalar"),
        ("train_temperature", "scalar"),
        ("train_loss", "loss"),
        ("train_cpc_audio", "loss"),
        ("val_loss", "loss"),
        ("val_mae", "loss"),
        ("val_image_alone_mae", "loss"),
        ("val_accuracy", "metric"),
        ("val_image_to_text_r1", "metric"),
        ("val_corr", "metric"),
    ],
)
def test_curve_panel(name, panel):
    assert plots.curve_panel(name) == panel


def test_series_styles_never_repeat():
    names = ["val_accuracy", "val_macro_f1", "val_corr", "val_acc2", "val_acc2_nonzero", "val_f1", "val_f1_nonzero"]
    names += ["val_acc7", "val_image_to_text_r1", "val_image_to_text_r5", "val_text_to_image_r1"]
    styles = plots.series_styles(names)
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == len(names)
    assert styles["val_accuracy"]["color"] == plots.MODALITY_COLORS["fused"]
    assert styles["val_image_to_text_r5"]["color"] == plots.MODALITY_COLORS["image"]


def test_training_curves_panels_selected_epoch_and_integer_ticks(tmp_path, figures):
    plots.plot_training_curves(wide_log(), tmp_path / "curves.png", run_name="my-run", selected_epoch=2)
    (fig,) = figures
    assert "my-run" in fig.get_suptitle()
    lines = lines_by_label(fig)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(panels) == ["losses", "validation scores", "learning rate & scalars"]
    # The learning rate has its own y axis; the logit scale (about 14-20) shares no axis with it or with the scores.
    assert lines["lr"].axes is panels["learning rate & scalars"]
    assert lines["train_scale"].axes not in panels.values()
    assert lines["val_accuracy"].axes is panels["validation scores"]
    assert lines["val_mae"].axes is lines["train_loss"].axes is panels["losses"]
    assert panels["validation scores"].get_ylim() == (0.0, 1.05)
    # Validation points sit on whole epochs, training points within them; ticks are whole epochs.
    assert list(lines["val_accuracy"].get_xdata()) == [1, 2, 3]
    assert list(lines["train_loss"].get_xdata()) == [0.5, 1, 1.5, 2, 2.5, 3]
    axis = panels["learning rate & scalars"].xaxis
    assert isinstance(axis.get_major_locator(), MaxNLocator)
    assert all(float(tick).is_integer() for tick in axis.get_major_locator()())
    for ax in panels.values():
        (selected,) = [line for line in ax.get_lines() if line.get_label() == "selected (epoch 2)"]
        assert list(selected.get_xdata()) == [2, 2]


def test_same_modality_same_colour_in_every_plot(tmp_path, figures):
    audio = to_rgba(plots.MODALITY_COLORS["audio"])
    plots.plot_training_curves(wide_log(), tmp_path / "curves.png")
    plots.plot_modality_accuracy(wide_log(), tmp_path / "laziness.png", chance=0.1)
    plots.plot_noise_curves([0.0, 1.0], {"image": [0.9, 0.5], "audio": [0.9, 0.7]}, tmp_path / "noise.png")
    plots.plot_bars({"fused": 0.9, "image": 0.6, "audio": 0.4}, tmp_path / "single.png", "alone", "accuracy")
    plots.plot_bars({"all": 0.9, "without image": 0.5, "without audio": 0.8}, tmp_path / "missing.png", "x", "acc")
    curves, laziness, noise, single, missing = figures
    assert to_rgba(lines_by_label(curves)["val_audio_alone_accuracy"].get_color()) == audio
    assert to_rgba(lines_by_label(laziness)["audio alone"].get_color()) == audio
    assert to_rgba(lines_by_label(noise)["noise on audio"].get_color()) == audio
    assert single.axes[0].patches[2].get_facecolor() == audio
    assert missing.axes[0].patches[2].get_facecolor() == audio
    assert missing.axes[0].patches[2].get_hatch() == "//"
    fused = to_rgba(plots.MODALITY_COLORS["fused"])
    assert single.axes[0].patches[0].get_facecolor() == missing.axes[0].patches[0].get_facecolor() == fused


def test_accuracy_plots_draw_chance_and_name_run_and_split(tmp_path, figures):
    where = {"run_name": "my-run", "split": "test", "chance": 0.1}
    plots.plot_bars({"fused": 0.9, "image": 0.6}, tmp_path / "bars.png", "each modality alone", "accuracy", **where)
    plots.plot_noise_curves([0.0, 0.5, 2.0], {"text": [0.9, 0.5, 0.2]}, tmp_path / "noise.png", **where)
    rows = wide_log()
    plots.plot_modality_accuracy(rows, tmp_path / "lazy.png", run_name="my-run", selected_epoch=3, chance=0.1)
    bars, noise, laziness = figures
    for fig, split in ((bars, "test"), (noise, "test"), (laziness, "validation")):
        ax = fig.axes[0]
        assert ax.get_title().endswith(f"run my-run, {split} split")
        assert list(lines_by_label(fig)["chance (0.1)"].get_ydata()) == [0.1, 0.1]
        assert ax.get_ylim() == (0.0, 1.05)
    assert list(noise.axes[0].get_xticks()) == [0.0, 0.5, 2.0]
    assert list(lines_by_label(laziness)["selected (epoch 3)"].get_xdata()) == [3, 3]
    assert isinstance(laziness.axes[0].xaxis.get_major_locator(), MaxNLocator)


def test_confusion_matrix_title(tmp_path, figures):
    plots.plot_confusion_matrix(np.eye(2), ["a", "b"], tmp_path / "cm.png", run_name="my-run", split="validation")
    assert figures[0].axes[0].get_title() == "confusion matrix\nrun my-run, validation split"
