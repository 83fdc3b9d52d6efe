"""The run's CSV log, in long form (``step, epoch, name, value``) so any strategy can log any named value."""

from __future__ import annotations

import csv
from pathlib import Path

FIELDS = ["step", "epoch", "name", "value"]


class CsvLog:
    """Appends rows to ``log.csv``; on resume, rows past the restored step are dropped first.

    Args:
        path: the CSV file.
        resume_step: when resuming, the global step of the checkpoint; None for a fresh log.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        if resume_step is None or not self.path.exists():
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(FIELDS)
        else:
            kept = [r for r in read_log(self.path) if int(r["step"]) <= resume_step]
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, FIELDS)
                writer.writeheader()
                writer.writerows(kept)

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                writer.writerow([step, epoch, name, f"{value:.6g}"])


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
