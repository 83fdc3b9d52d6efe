"""The run's logs: ``log.csv`` in long form (``step, epoch, name, value``) so any strategy can log any named value,
and optionally the same values as TensorBoard events (``trainer.log_to``)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from polymodal.errors import ConfigError

FIELDS = ["step", "epoch", "name", "value"]


class CsvLog:
    """Appends rows to ``log.csv``; on resume, rows written after the restored checkpoint are dropped first.

    Rows are counted rather than filtered by step: an epoch's validation rows share the step of the mid-epoch
    checkpoint saved just before them, so a step filter would keep them and the resumed run would write them again.

    Args:
        path: the CSV file.
        resume_rows: when resuming, ``rows`` as saved in the checkpoint; None for a fresh log.
    """

    def __init__(self, path: Path, resume_rows: int | None = None) -> None:
        self.path = Path(path)
        kept = read_log(self.path)[:resume_rows] if resume_rows is not None and self.path.exists() else []
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        self.rows = len(kept)

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                writer.writerow([step, epoch, name, f"{value:.6g}"])
        self.rows += len(values)


class TensorBoardLog:
    """Writes each logged value as a TensorBoard scalar (``train/loss``, ``val/accuracy``, ``lr``) in ``folder``.

    Args:
        folder: the event files' folder (``RUN/tensorboard``).
        purge_step: when resuming, the first step the resumed run writes: TensorBoard discards events from this step
            on that the interrupted run had written.
    """

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter  # imported here: TensorBoard is an optional extra

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            split, _, rest = name.partition("_")
            self.writer.add_scalar(f"{split}/{rest}" if split in ("train", "val") and rest else name, value, step)

    def close(self) -> None:
        self.writer.close()


def check_tensorboard() -> None:
    """Raises a ConfigError unless the ``tensorboard`` package is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "trainer.log_to: tensorboard needs the tensorboard package (pip install 'polymodal[tensorboard]')"
        )


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wide_rows(path: Path) -> list[dict[str, float]]:
    """Pivots the long log into one dict per step (``step``, ``epoch`` and each logged name)."""
    rows: dict[int, dict[str, float]] = {}
    for r in read_log(path):
        step = int(r["step"])
        row = rows.setdefault(step, {"step": step, "epoch": int(r["epoch"])})
        row[r["name"]] = float(r["value"])
    return [rows[s] for s in sorted(rows)]
