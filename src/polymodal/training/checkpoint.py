"""Checkpoints: tensors as safetensors, everything else as JSON, each written atomically and checksummed.

A checkpoint ``ckpt-00000120`` is two files: ``ckpt-00000120.safetensors`` (model weights, optimizer tensors, RNG
states) and ``ckpt-00000120.json`` (counters, optimizer hyper-parameters, scheduler, Python/NumPy RNG, strategy
state, and the sha256 of the tensor file). The JSON is written last, so its presence marks a complete checkpoint.
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from polymodal.fileio import atomic_path, atomic_write_text, sha256_file


def _unshared(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    # safetensors refuses tensors that share memory (tied weights, views); those get their own copy.
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        pointer = value.untyped_storage().data_ptr()
        out[key] = value.clone() if pointer in seen and value.numel() else value
        seen.add(pointer)
    return out


def save_tensors(path: Path, tensors: dict[str, Tensor]) -> str:
    """Saves contiguous CPU copies atomically; returns the file's sha256."""
    with atomic_path(path) as tmp:
        save_file(_unshared(tensors), tmp)
        digest = sha256_file(tmp)
    return digest


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Splits ``optimizer.state_dict()`` into tensors (``optim.<param>.<name>``) and JSON-able rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``flatten_optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    # JSON turns tuples (Adam's ``betas``) into lists; give them back their type.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


class CheckpointManager:
    """Writes, lists, verifies and prunes the checkpoints of one run.

    Args:
        folder: the run's ``checkpoints/`` folder.
        keep: how many step checkpoints to keep (``best`` is kept apart).
    """

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def save(self, name: str, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
        """Writes ``name.safetensors`` then ``name.json`` (with the checksum) and prunes old step checkpoints."""
        digest = save_tensors(self.folder / f"{name}.safetensors", tensors)
        atomic_write_text(self.folder / f"{name}.json", json.dumps({**state, "sha256": digest}))
        if name.startswith("ckpt-"):
            for old in self.step_checkpoints()[: -self.keep]:
                old.with_suffix(".json").unlink(missing_ok=True)
                old.with_suffix(".safetensors").unlink(missing_ok=True)
        return self.folder / f"{name}.json"

    def remove_partial(self) -> None:
        """Deletes what an interrupted save leaves behind: temporary files and tensor files without their JSON."""
        for tmp in self.folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        for tensors in self.folder.glob("ckpt-*.safetensors"):
            if not tensors.with_suffix(".json").is_file():
                tensors.unlink(missing_ok=True)

    def step_checkpoints(self) -> list[Path]:
        """Complete step checkpoints (their JSON files), oldest first."""
        return sorted(self.folder.glob("ckpt-*.json"))

    def load(self, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Loads and verifies one checkpoint; raises ValueError when it is incomplete or corrupt."""
        meta_path = self.folder / f"{name}.json"
        tensor_path = self.folder / f"{name}.safetensors"
        try:
            state = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{meta_path}: unreadable checkpoint state ({err})") from None
        if not tensor_path.is_file():
            raise ValueError(f"{tensor_path}: missing")
        if sha256_file(tensor_path) != state.get("sha256"):
            raise ValueError(f"{tensor_path}: checksum mismatch (truncated or corrupted)")
        return load_file(tensor_path), state

    def load_latest(self) -> tuple[dict[str, Tensor], dict[str, Any], Path] | None:
        """The newest checkpoint that verifies, falling back over corrupt ones with a warning; None if none."""
        for meta_path in reversed(self.step_checkpoints()):
            try:
                tensors, state = self.load(meta_path.stem)
            except ValueError as err:
                warnings.warn(f"skipping checkpoint: {err}", stacklevel=2)
                continue
            return tensors, state, meta_path
        return None


def rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Torch (and CUDA) RNG states as tensors; Python and NumPy RNG states as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    # The global generator is NumPy's legacy MT19937, whose state is this tuple (its stub also allows a dict).
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, pos, has_gauss, cached = legacy
    return tensors, {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Restores what ``rng_state`` returned."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
