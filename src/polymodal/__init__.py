"""polymodal: multimodal representation learning in PyTorch.

``polymodal.predict(run_dir, data)`` and ``polymodal.write_predictions(rows, out)`` predict with a trained run from
Python (imported on first use, so ``import polymodal`` stays light).
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"predict": "polymodal.runs", "write_predictions": "polymodal.runs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
