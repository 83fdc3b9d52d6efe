"""The benchmarks use only the public API: ``polymodal`` and the names of ``polymodal.__all__``, no submodule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import polymodal

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def private_uses(source: str) -> list[str]:
    """What ``source`` takes from polymodal beyond its public names, one line each (``line: what``)."""
    tree = ast.parse(source)
    aliases = {"polymodal"}  # names bound to the package (``import polymodal as pm``)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("polymodal."):
                    found.append(f"{node.lineno}: import {alias.name}")
                elif alias.name == "polymodal":
                    aliases.add(alias.asname or "polymodal")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "polymodal":
            if node.module != "polymodal":
                found.append(f"{node.lineno}: from {node.module} import ...")
            else:
                found += [f"{node.lineno}: polymodal.{a.name}" for a in node.names if a.name not in polymodal.__all__]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in polymodal.__all__ and not node.attr.startswith("__"):
                found.append(f"{node.lineno}: polymodal.{node.attr}")
    return found


def test_the_check_finds_submodules_and_unexported_names():
    source = (
        "import polymodal\nimport polymodal.runs\nfrom polymodal.config import load_config\n"
        "from polymodal import train, git_commit\nimport polymodal as pm\npm.train_run\npolymodal.load(1)\n"
    )
    assert private_uses(source) == [
        "2: import polymodal.runs",
        "3: from polymodal.config import ...",
        "4: polymodal.git_commit",
        "6: polymodal.train_run",
    ]


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmarks_use_only_the_public_api(script: Path):
    assert private_uses(script.read_text(encoding="utf-8")) == []
