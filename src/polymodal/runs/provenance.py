"""What produced a run and how long its phases took: ``metrics.json``'s provenance and ``timing``."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal import __version__

# The package folder: its git checkout, if any, is what produced a run.
PACKAGE_FOLDER = Path(__file__).resolve().parents[1]


def provenance() -> dict[str, Any]:
    """What produced a run, for ``metrics.json``: versions, the git commit of a checkout, and the command line.

    ``git_commit`` is there only when the package runs from a git checkout (not from an installed copy).
    """
    record: dict[str, Any] = {
        "versions": {
            "polymodal": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        }
    }
    commit = git_commit(PACKAGE_FOLDER)
    if commit:
        record["git_commit"] = commit
    record["command"] = list(sys.argv)
    return record


def git_commit(folder: Path) -> str | None:
    """The commit checked out where ``folder``'s ``__init__.py`` is tracked by git; None anywhere else."""
    try:
        # Tracked, not merely inside a repository: an installed copy may sit in a virtual env inside a user's repo.
        tracked = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "--error-unmatch", "__init__.py"], capture_output=True, timeout=10
        )
        if tracked.returncode != 0:
            return None
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, or git failed
        return None
    return head.stdout.strip()


class PhaseClock:
    """Wall-clock seconds of a run's phases, for ``metrics.json``'s ``timing``.

    ``lap(name)`` adds the time since the previous lap to ``name``, less the time spent meanwhile in callbacks
    wrapped by ``timed``, which count under their own name.

    Args:
        now: the clock read, in seconds.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self.now = now
        self.started = self.last = now()
        self.nested = 0.0
        self.seconds: dict[str, float] = {}

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def lap(self, name: str) -> None:
        now = self.now()
        self._add(name, now - self.last - self.nested)
        self.last, self.nested = now, 0.0

    def timed(self, name: str, function: Any) -> Any:
        """``function`` with the time of each call added to ``name``."""

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = self.now()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = self.now() - started
                self._add(name, seconds)
                self.nested += seconds

        return timed_call

    def report(self) -> dict[str, float]:
        """Seconds per phase and ``total``, from the start to the last lap."""
        return {**{k: round(v, 3) for k, v in self.seconds.items()}, "total": round(self.last - self.started, 3)}
