"""The run's CSV log, in long form (``step, epoch, name, value``) so any strategy can log any named value."""

from __future__ import annotations

import csv
from pathlib import Path

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
