"""The evaluation report draws its plots with the run's name, the split and chance level."""

from types import SimpleNamespace

import pytest
import torch

from polymodal.eval import plots
from polymodal.eval.evaluate import full_report

CLASSES = 4


def batches() -> list[dict]:
    """Two batches of image + audio inputs whose image mean encodes the class."""
    out = []
    for start in (0, 4):
        target = torch.arange(start, start + 4) % CLASSES
        image = target.float()[:, None].repeat(1, 3)
        present = torch.ones(4, dtype=torch.bool)
        out.append(
            {
                "inputs": {"image": image, "audio": torch.randn(4, 3)},
                "present": {"image": present, "audio": present.clone()},
                "lengths": {},
                "target": target,
            }
        )
    return out


def predict(batch: dict) -> torch.Tensor:
    return torch.nn.functional.one_hot(batch["inputs"]["image"][:, 0].round().long().clamp(0, CLASSES - 1), CLASSES)


PREDICTOR = SimpleNamespace(predict=predict, encode=lambda batch: None)  # scored one pass per subset


@pytest.fixture
def figures(monkeypatch):
    saved = {}
    save = plots._save

    def keep(fig, path):
        saved[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def test_report_plots_name_run_split_and_chance(tmp_path, figures):
    args = (PREDICTOR, batches(), "classification", ["image", "audio"], None, [0.0, 1.0], 0, "cpu", tmp_path)
    full_report(*args, run_name="my-run", split="validation")
    assert sorted(figures) == ["confusion_matrix.png", "missing.png", "noise.png", "per_modality.png"]
    for name, fig in figures.items():
        assert fig.axes[0].get_title().endswith("run my-run, validation split"), name
        if name != "confusion_matrix.png":
            chance = [line for line in fig.axes[0].get_lines() if line.get_label() == f"chance ({1 / CLASSES:.3g})"]
            assert len(chance) == 1 and list(chance[0].get_ydata()) == [1 / CLASSES] * 2, name
