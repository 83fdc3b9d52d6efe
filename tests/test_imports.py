"""Import direction between the parts of polymodal (docs/architecture.md), and no import cycle, checked on the source
with ``ast``.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``. A function-local import that
only hides a cycle is still a cycle here; lazy imports of heavy optional dependencies (``transformers``,
``open_clip``, ``faiss``) are outside polymodal, so they are no edges of the graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "polymodal"

# The parts of polymodal from the bottom up: the foundation (allocator, errors, files, progress, registry, recipe
# files), the library (objectives, modalities, data, models, eval, training, strategies; then config, which validates
# a run against the library's registries; then spaces), orchestration (runs), and the entry points (api, cli).
FOUNDATION = {"allocator", "errors", "fileio", "progress", "registry", "recipes", "recipe_files"}
LIBRARY = {"objectives", "modalities", "data", "models", "eval", "training", "strategies"}
TOP = {"config", "spaces", "runs", "api", "cli", "__main__"}

# part -> parts of polymodal it must not import
FORBIDDEN = {
    **{part: LIBRARY | TOP for part in FOUNDATION},
    "objectives": (LIBRARY - {"objectives"}) | TOP,
    "modalities": {"data", "models", "eval", "training", "strategies"} | TOP,
    "training": {"modalities", "models", "strategies"} | TOP,
    "models": {"strategies", "training"} | TOP,
    "data": {"models", "training", "strategies", "eval"} | TOP,
    "eval": {"models", "training", "strategies"} | TOP,
    "strategies": {"training"} | TOP,
    "config": TOP - {"config"},
    "spaces": TOP - {"spaces"},
    "runs": {"api", "cli", "__main__"},
    "api": {"cli", "__main__"},
}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved).

    ``from package import name`` imports the submodule ``package.name`` where there is one, else ``package`` itself.
    """
    modules = {module_name(p, root) for p in root.rglob("*.py")}
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules]
            names.extend(submodules if len(submodules) == len(node.names) else [module, *submodules])
    return names


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of the package under ``root`` it imports."""
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    return {name: {m for m in imported_modules(path, root) if m in paths and m != name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when there is none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every module below it is checked
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def modules_of(part: str) -> list[Path]:
    folder = PACKAGE / part
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{part}.py"]


def part_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "polymodal" and len(parts) > 1 else None


def test_every_part_has_a_rule() -> None:
    parts = {path.stem for path in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    parts -= {"__init__", "__pycache__"}
    assert parts == FOUNDATION | LIBRARY | TOP, "a new module or package of polymodal needs its place in FORBIDDEN"


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_part_does_not_import_upstream(part: str) -> None:
    assert all(path.is_file() for path in modules_of(part)), f"no modules for {part}"
    bad = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in modules_of(part)
        for module in imported_modules(path)
        if part_of(module) in FORBIDDEN[part]
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_objectives_import_only_torch_and_stdlib() -> None:
    allowed_roots = {"torch", "__future__"} | set(sys.stdlib_module_names)
    bad = []
    for path in modules_of("objectives"):
        for module in imported_modules(path):
            root = module.split(".")[0]
            inside = part_of(module) == "objectives"
            if not inside and root not in allowed_roots:
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not bad, "\n".join(bad)


def test_checker_sees_imports() -> None:
    assert "polymodal.training.checkpoint" in imported_modules(PACKAGE / "training" / "__init__.py")
    assert "polymodal.models" in imported_modules(PACKAGE / "runs" / "train.py")
    assert part_of("polymodal.models.build") == "models" and part_of("torch.nn") is None
    graph = import_graph()
    assert "polymodal.runs.train" in graph["polymodal.cli"]  # imported inside a function
    assert "polymodal.strategies" in graph["polymodal.config"]  # inside a function and under TYPE_CHECKING


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_cycle_check_finds_a_planted_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            # a function-local import hides the cycle from the interpreter, not from the check
            "low.py": "import os\n\ndef late():\n    from pkg.high import thing\n",
            "high.py": "from pkg import low\nthing = 1\n",
            "sub/__init__.py": "from .leaf import x\n",
            "sub/leaf.py": "from pkg.low import late\nx = 1\n",
        },
    )
    graph = import_graph(root)
    assert graph["pkg.high"] == {"pkg.low"} and graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert find_cycle(graph) == ["pkg.high", "pkg.low", "pkg.high"]
    (root / "low.py").write_text("import os\n", encoding="utf-8")
    assert find_cycle(import_graph(root)) == []
    (root / "low.py").write_text("from pkg.sub import x\n", encoding="utf-8")  # through a package's __init__
    assert find_cycle(import_graph(root)) == ["pkg.low", "pkg.sub", "pkg.sub.leaf", "pkg.low"]


def test_the_config_sections_import_no_torch() -> None:
    """Each section's config lives beside its consumer, yet a recipe is checked before torch is imported."""
    sections = "polymodal.data.config, polymodal.models.config, polymodal.training.config, polymodal.eval.config"
    code = f"import sys, polymodal.config, {sections}\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
