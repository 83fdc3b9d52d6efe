"""The recipes shipped with polymodal: one YAML file each in this folder, opened by a comment header.

The header's first line says what the recipe trains, a ``# Data:`` line what data it needs: ``embedded`` (it ships
inside the package) or the user's own copy and how to give it (docs/data.md); ``# Pretrain:`` lines, the commands
that train the earlier runs a recipe's ``from_run`` encoders reuse. Nothing heavy is imported here, so
``polymodal recipes`` stays fast.
"""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path

DATA_PREFIX = "# Data:"
PRETRAIN_PREFIX = "# Pretrain:"
EMBEDDED = "embedded"  # how a Data line starts when the recipe runs on packaged data as it is


def bundled_recipes() -> dict[str, Path]:
    """Bundled recipe name -> path."""
    folder = resources.files("polymodal") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def recipe_summary(path: Path) -> str:
    """The first comment line of a recipe file."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def recipe_data(path: Path) -> str:
    """What data a recipe needs: its ``# Data:`` header line without the prefix ("" when it has none)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(DATA_PREFIX):
            return line.removeprefix(DATA_PREFIX).strip()
    return ""


def recipe_pretrain(path: Path) -> list[list[str]]:
    """The arguments of each ``# Pretrain:`` command of a recipe (after ``polymodal``), in order."""
    commands = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(PRETRAIN_PREFIX):
            argv = shlex.split(line.removeprefix(PRETRAIN_PREFIX))
            commands.append(argv[1:] if argv[:1] == ["polymodal"] else argv)
    return commands
