"""The one registry helper: named components, each with a pydantic config of its constructor arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
            raise ConfigError(f"unknown {self.kind} {name!r} (registered: {', '.join(self.names())})")
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
    """Joins pydantic's errors into one line, each naming the dotted key and the problem."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{where}.{loc}" if where and loc else (where or loc)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            if model is not None and len(e["loc"]) == 1:
                msg += f" (allowed: {', '.join(model.model_fields)})"
        else:
            msg = e["msg"]
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)
