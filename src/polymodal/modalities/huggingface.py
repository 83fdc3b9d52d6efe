"""Hugging Face model directories: the one loading path that the ``hf`` encoder, the text and image adapters'
settings (``data.text.tokenizer``, ``data.image.processor``) and the pretrained Ex-MCR spaces share.

Everything is read from a local ``save_pretrained`` directory, never from a hub. ``transformers`` (and torch) are
imported only inside the functions that load a model or a tokenizer, so reading a processor's settings stays light.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
INSTALL = "pip install 'polymodal[pretrained]'"
_LOCAL = {"local_files_only": True}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def model_directory(path: str | Path, what: str, required: Sequence[str | tuple[tuple[str, ...], ...]] = ()) -> Path:
    """Checks that ``path`` is a ``save_pretrained`` directory holding ``config.json``, its weights and ``required``.

    Args:
        path: the directory.
        what: what it should hold, for messages (e.g. ``"clip model"``).
        required: further files, each a name, or a tuple of alternatives of which one must be there, each a tuple
            of names that go together: ``(("tokenizer.json",), ("vocab.json", "merges.txt"))``.

    Raises:
        ConfigError: the path is missing or not a directory, or files are missing (all listed in one line).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found")
    if not path.is_dir():
        raise ConfigError(f"{path}: not a directory of Hugging Face-format weights (save_pretrained layout)")
    files = ["config.json", *(r for r in required if isinstance(r, str))]
    missing = [name for name in files if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("model.safetensors (or pytorch_model.bin)")
    for choices in (r for r in required if isinstance(r, tuple)):
        if not any(all((path / name).is_file() for name in names) for names in choices):
            first, *others = (" and ".join(names) for names in choices)
            missing.append(first + "".join(f" (or {other})" for other in others))
    if missing:
        raise ConfigError(f"{path}: not a Hugging Face {what} directory: no {', '.join(missing)}")
    return path


def import_transformers(path: str | Path, what: str) -> Any:
    """The ``transformers`` module, or a ConfigError naming ``path`` and how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{path}: {what} needs transformers: {INSTALL}") from None
    return transformers


def load_model(
    path: str | Path,
    what: str,
    model_class: str = "AutoModel",
    check: Callable[[Any], None] | None = None,
    required: Sequence[str | tuple[tuple[str, ...], ...]] = (),
) -> Any:
    """Loads a model from a local ``save_pretrained`` directory, checked before anything heavy is read.

    Args:
        path: the directory.
        what: what it holds, for messages (e.g. ``"text model"``).
        model_class: the ``transformers`` class that loads it (``AutoModel`` gives the base model without a task
            head).
        check: called with the loaded ``config.json`` before the weights are read; raises a ConfigError for a model
            of the wrong kind.
        required: files needed beside ``config.json`` and the weights (see :func:`model_directory`).

    Returns:
        The model, in train mode as ``transformers`` returns it.

    Raises:
        ConfigError: a missing directory or file, ``transformers`` not installed, an architecture it does not know,
            weights that do not load or lack parameters of the model.
    """
    path = model_directory(path, what, required)
    transformers = import_transformers(path, what)
    try:
        config = transformers.AutoConfig.from_pretrained(path, **_LOCAL)
        if check is not None:
            check(config)
        model, info = getattr(transformers, model_class).from_pretrained(path, output_loading_info=True, **_LOCAL)
    except ConfigError:
        raise
    except Exception as err:  # OSError, ValueError (unknown model_type), safetensors' errors, size mismatches
        raise ConfigError(f"{path}: cannot load the {what} ({_one_line(err)})") from None
    parameters = dict(model.named_parameters())
    untrained = [name for name in info.get("missing_keys", ()) if name in parameters]
    if untrained:
        raise ConfigError(f"{path}: the weights lack {len(untrained)} parameters of the model (e.g. {untrained[0]})")
    return model


def model_from_config(settings: dict[str, Any], what: str) -> Any:
    """A randomly initialised base model (``AutoModel``) from ``config.json``-style settings with a ``model_type``.

    Raises:
        ConfigError: no or an unknown ``model_type``, settings the model refuses, or ``transformers`` missing.
    """
    model_type = settings.get("model_type")
    if not model_type:
        raise ConfigError(f"{what}: config needs a model_type (e.g. bert, vit, wav2vec2)")
    transformers = import_transformers(f"{what}.config", what)
    try:
        config = transformers.AutoConfig.for_model(**settings)
        return transformers.AutoModel.from_config(config)
    except Exception as err:  # ValueError for an unknown model_type, TypeError/ValueError for bad settings
        raise ConfigError(f"{what}.config: cannot build a {model_type!r} model ({_one_line(err)})") from None


def load_tokenizer(path: str | Path, what: str = "tokenizer") -> Any:
    """The ``transformers`` tokenizer saved in a local directory.

    Raises:
        ConfigError: the directory is missing, holds no tokenizer, or ``transformers`` is not installed.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: {what} directory not found")
    transformers = import_transformers(path, what)
    try:
        return transformers.AutoTokenizer.from_pretrained(path, **_LOCAL)
    except Exception as err:  # OSError, ValueError when no tokenizer files are there
        raise ConfigError(f"{path}: cannot load the {what} ({_one_line(err)})") from None


def read_processor(path: str | Path, where: str) -> dict[str, Any]:
    """The settings of a model directory's ``preprocessor_config.json`` (plain JSON; no ``transformers`` needed).

    Raises:
        ConfigError: ``where`` and the problem, when the file is missing or not a JSON object.
    """
    file = Path(path) / "preprocessor_config.json"
    if not file.is_file():
        raise ConfigError(f"{where}: {file} not found (a Hugging Face model directory with its processor)")
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}: {file} is not valid JSON ({_one_line(err)})") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: {file} is not a JSON object")
    return settings
