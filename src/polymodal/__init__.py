"""polymodal: multimodal representation learning in PyTorch.

The Python API (see ``polymodal.api`` and ``docs/``):

- ``polymodal.train(recipe, overrides, out=..., data=...)`` trains a run and returns it; ``polymodal.load(run_dir)``
  opens one. A :class:`Run` has ``config``, ``info``, ``metrics``, ``predict``, ``embed``, ``evaluate`` and ``model``.
- ``polymodal.load_data(recipe, overrides)`` is the data a run of a config trains and is scored on (a ``DataBundle``).
- ``polymodal.Splits(train, val, test, class_names)`` passes the user's own torch Datasets of polymodal samples.
- ``polymodal.load_config(recipe, overrides)`` is the validated config of a recipe, with every default.
- ``polymodal.predict(run_dir, data)`` and ``polymodal.write_predictions(rows, out)``: predictions as rows and CSV.
- ``polymodal.EmbeddingIndex(vectors, ids, modality)`` searches embeddings (``run.embed``) by cosine similarity.
- Custom components register in ``ENCODERS``, ``FUSIONS``, ``HEADS``, ``ARCHITECTURES``, ``STRATEGIES`` (a
  ``Strategy`` declares its ``Needs``) and
  ``DATASETS`` with a ``ComponentConfig`` of their options (``@polymodal.ENCODERS.register("name", Config)``).

Everything is imported on first use, so ``import polymodal`` stays light.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": "polymodal.api",
    "load": "polymodal.api",
    "load_data": "polymodal.api",
    "Run": "polymodal.api",
    "Splits": "polymodal.data.memory",
    "load_config": "polymodal.config",
    "predict": "polymodal.runs.inference",
    "write_predictions": "polymodal.runs.inference",
    "EmbeddingIndex": "polymodal.eval.index",
    "ENCODERS": "polymodal.models",
    "FUSIONS": "polymodal.models",
    "HEADS": "polymodal.models",
    "ARCHITECTURES": "polymodal.models",
    "STRATEGIES": "polymodal.strategies",
    "Strategy": "polymodal.strategies",
    "Needs": "polymodal.strategies",
    "DATASETS": "polymodal.data.sources",
    "DataBundle": "polymodal.data.sources",
    "ComponentConfig": "polymodal.registry",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
