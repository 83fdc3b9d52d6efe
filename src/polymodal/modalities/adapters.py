"""The registry of modality adapters: each adapter kind with its settings class and its adapter class.

A kind (``image``, ``audio``, ``text``, ``features``) is registered with ``@ADAPTERS.register(kind, Settings)`` on
its adapter class. The settings are the recipe's ``data.<kind>`` section; the adapter is built from them and converts
one item with ``read``: a file whose suffix is one of its ``extensions`` (which also tell a CSV manifest's column
kind), or, for an adapter without extensions, the string itself. The functions below (and
``polymodal.modalities.ADAPTERS``) import every built-in adapter first.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from polymodal.registry import ComponentConfig, Registry

if TYPE_CHECKING:
    from torch import Tensor

ADAPTERS = Registry("modality adapter")

# The modules of polymodal's own adapters, each registering its kind when imported.
BUILTIN = ("audio", "features", "image", "text")


class Adapter(Protocol):
    """What a registered adapter class offers besides its own ``from_*`` methods."""

    extensions: ClassVar[tuple[str, ...]]

    def __init__(self, cfg: Any) -> None: ...

    def read(self, item: str | Path) -> Tensor: ...


def registered() -> Registry:
    """``ADAPTERS`` with every built-in adapter imported (registered)."""
    for module in BUILTIN:
        importlib.import_module(f"polymodal.modalities.{module}")
    return ADAPTERS


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter class registered for ``kind`` (a one-line ConfigError names the registered kinds)."""
    return cast("type[Adapter]", registered().get(kind)[0])


def settings_class(kind: str) -> type[ComponentConfig]:
    """The settings class registered for ``kind`` (the ``data.<kind>`` section)."""
    return registered().get(kind)[1]


def adapter(kind: str, settings: Any) -> Adapter:
    """The adapter of ``kind`` built with its settings (a ``data.<kind>`` section)."""
    return adapter_class(kind)(settings)


def file_kinds() -> tuple[dict[str, str], str]:
    """Each file suffix (lower case) a registered adapter reads -> its kind, and the kind of any other item (the one
    whose adapter reads the string itself)."""
    kinds = registered().names()
    suffixes = {suffix: kind for kind in kinds for suffix in adapter_class(kind).extensions}
    return suffixes, next(kind for kind in kinds if not adapter_class(kind).extensions)


def reads_files(kind: str) -> bool:
    """Whether the adapter of ``kind`` reads files (else it takes the string itself, as text does)."""
    return bool(adapter_class(kind).extensions)
