"""Import direction between subpackages (STYLE.md section 1), checked on the source with ``ast``.

Every import counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "polymodal"

# subpackage -> subpackages of polymodal it must not import
FORBIDDEN = {
    "training": {"modalities", "models"},
    "models": {"strategies", "training"},
    "data": {"models", "training"},
    "eval": {"models", "training", "strategies"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    name = module_name(path)
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
            names.append(module)
            # ``from polymodal import models`` imports the subpackage itself.
            names.extend(f"{module}.{alias.name}" for alias in node.names if module == "polymodal")
    return names


def modules_of(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def subpackage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "polymodal" and len(parts) > 1 else None


@pytest.mark.parametrize("subpackage", sorted(FORBIDDEN))
def test_subpackage_does_not_import_upstream(subpackage: str) -> None:
    assert modules_of(subpackage), f"no modules under {subpackage}/"
    bad = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in modules_of(subpackage)
        for module in imported_modules(path)
        if subpackage_of(module) in FORBIDDEN[subpackage]
    ]
    assert not bad, "\n".join(bad)


def test_objectives_import_only_torch_and_stdlib() -> None:
    allowed_roots = {"torch", "__future__"} | set(sys.stdlib_module_names)
    bad = []
    for path in modules_of("objectives"):
        for module in imported_modules(path):
            root = module.split(".")[0]
            inside = subpackage_of(module) == "objectives"
            if not inside and root not in allowed_roots:
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not bad, "\n".join(bad)


def test_checker_sees_imports() -> None:
    assert "polymodal.training.checkpoint" in imported_modules(PACKAGE / "training" / "__init__.py")
    assert "polymodal.models" in imported_modules(PACKAGE / "runs.py")
    assert subpackage_of("polymodal.models.build") == "models" and subpackage_of("torch.nn") is None


def test_the_config_sections_import_no_torch() -> None:
    """Each section's config lives beside its consumer, yet a recipe is checked before torch is imported."""
    sections = "polymodal.data.config, polymodal.models.config, polymodal.training.config, polymodal.eval.config"
    code = f"import sys, polymodal.config, {sections}\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
