"""File helpers shared by every package: atomic writes and checksums.

Anything that must never be half-written (checkpoints, run files, packed shards, indexes) goes through
``atomic_path``: a temporary file in the same folder, fsync, then rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polymodal.errors import DataError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; on success it is fsynced and renamed over ``path``.

    The temporary file is created with mode 0666 minus the umask (0644 under umask 022), like any file a program
    opens for writing, so run files are readable like logs (``tempfile.mkstemp`` would make them 0600). On an error
    it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = tmp.stat().st_mode
    try:
        yield tmp
        os.chmod(tmp, mode)  # a writer that replaces the file (safetensors does) would leave its own mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder, fsync and rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def user_cache_folder(part: str) -> Path | None:
    """A part of the user's cache folder (decoded manifests, cached features): ``$POLYMODAL_CACHE/<part>``, else
    ``$XDG_CACHE_HOME/polymodal/<part>``, else ``~/.cache/polymodal/<part>``; None when ``POLYMODAL_CACHE=off``."""
    chosen = os.environ.get("POLYMODAL_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen).expanduser() / part
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "polymodal" / part


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; invalid JSON or another JSON type is one DataError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({' '.join(str(err).split())})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value
