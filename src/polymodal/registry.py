"""The one registry helper: named components, each with a pydantic config of its constructor arguments."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from polymodal.errors import ConfigError


class ComponentConfig(BaseModel):
    """Base of every component config: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class Registry:
    """Maps a name to a (builder, config class) pair.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"encoder"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., Any], type[ComponentConfig]]] = {}

    def register(self, name: str, config: type[ComponentConfig]) -> Callable:
        """Decorator registering a class or function under ``name`` with its config class."""

        def wrap(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = (obj, config)
            return obj

        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> tuple[Callable[..., Any], type[ComponentConfig]]:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown {self.kind} {name!r} ({hint}registered: {', '.join(self.names())})")
        return self._entries[name]

    def validate(self, spec: dict[str, Any] | None, where: str) -> dict[str, Any]:
        """Validates ``spec`` (a dict with a ``name`` key) and returns it with every default filled in."""
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where}: expected a mapping with a 'name' key naming a {self.kind}")
        params = {k: v for k, v in spec.items() if k != "name"}
        try:
            _, config_cls = self.get(spec["name"])
        except ConfigError as err:
            raise ConfigError(f"{where}.name: {err}") from None
        try:
            config = config_cls(**params)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, where, config_cls)) from None
        return {"name": spec["name"], **config.model_dump()}

    def build(self, spec: dict[str, Any], **parts: Any) -> Any:
        """Builds the component named in a validated ``spec``; ``parts`` are built sub-modules or sizes."""
        builder, config_cls = self.get(spec["name"])
        config = config_cls(**{k: v for k, v in spec.items() if k != "name"})
        return builder(**config.model_dump(), **parts)


def format_validation_error(err: ValidationError, where: str = "", model: type[BaseModel] | None = None) -> str:
    """Joins pydantic's errors into one line, each naming the dotted key and the problem.

    An unknown key gets the closest key of ``model``'s whole schema as a suggestion (``trainer.lr``: did you mean
    ``trainer.optimizer.lr``?), and at the top level the list of allowed keys.
    """
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{where}.{loc}" if where and loc else (where or loc)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            if model is not None:
                suggestion = closest_key(loc, schema_keys(model))
                if suggestion:
                    msg += f" (did you mean {f'{where}.{suggestion}' if where else suggestion}?)"
                if len(e["loc"]) == 1:
                    msg += f" (allowed: {', '.join(model.model_fields)})"
        else:
            msg = e["msg"]
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a config model: its fields and, recursively, those of nested models (``trainer``,
    ``trainer.optimizer``, ``trainer.optimizer.lr``)."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        nested = [t for t in (field.annotation, *get_args(field.annotation)) if _is_model(t)]
        if nested:
            keys += schema_keys(nested[0], f"{prefix}{name}.")
    return keys


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def closest_key(key: str, keys: list[str]) -> str | None:
    """The known key a mistyped dotted key most likely meant, or None.

    The last part counts most: a key with the same last part anywhere in the schema (``trainer.lr`` ->
    ``trainer.optimizer.lr``) wins over a near spelling of it (``trainer.epochz`` -> ``trainer.epochs``); among
    several, the one closest to the whole dotted key.
    """
    leaf = key.rpartition(".")[2]
    leaves = {k.rpartition(".")[2] for k in keys}
    near = set(difflib.get_close_matches(leaf, leaves, n=3, cutoff=0.75)) if leaf not in leaves else {leaf}
    candidates = [k for k in keys if k.rpartition(".")[2] in near]
    return max(candidates, key=lambda k: difflib.SequenceMatcher(None, key, k).ratio(), default=None)
