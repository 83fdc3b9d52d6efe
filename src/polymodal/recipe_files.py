"""Recipe files: resolving a recipe name or path, reading YAML and applying ``key.path=value`` overrides.

Nothing here imports torch, so ``polymodal recipes``, ``--help`` and errors in a recipe's YAML answer at once; the
recipe's content is validated by :mod:`polymodal.config`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from polymodal.errors import ConfigError
from polymodal.recipes import bundled_recipes


def resolve_recipe_path(recipe: str) -> Path:
    """A bundled recipe name or a YAML path -> the file."""
    recipes = bundled_recipes()
    if recipe in recipes:
        return recipes[recipe]
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{recipe}: recipe file not found")
        return path
    close = difflib.get_close_matches(recipe, recipes, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown recipe {recipe!r} ({hint}bundled: {', '.join(sorted(recipes))}; or give a YAML path)")


def read_yaml(path: Path) -> dict[str, Any]:
    """Reads a YAML mapping; a syntax error or a non-mapping is one ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping of sections")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Applies overrides: ``key.sub=value`` strings, whose values are parsed as YAML scalars or lists, or a mapping
    of dotted keys to values (taken as they are, from Python)."""
    data = copy.deepcopy(data)
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(_parse_override, overrides)
    for key, value in pairs:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"override {key!r}: expected a dotted key such as trainer.epochs")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key.path=value")
    try:
        return key, yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        raise ConfigError(f"override {item!r}: value is not valid YAML") from None


def read_recipe(recipe: str, overrides: Sequence[str] | Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """A bundled recipe or YAML file with overrides applied, not yet validated, and its name for error messages."""
    path = resolve_recipe_path(recipe)
    source = f"{path} with overrides" if overrides else str(path)
    return apply_overrides(read_yaml(path), overrides or []), source
