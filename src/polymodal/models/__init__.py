"""Encoders, fusions, heads and the assembled models built from them.

Reusable blocks (an encoder, a fusion, a head) each live in their own file and register themselves; assembled
architectures (``MultimodalModel``) receive built parts. Losses do not belong here: a model's ``forward`` returns
outputs, and the strategy applies objectives from ``polymodal.objectives``.

The torch-free ``ModelConfig`` (the recipe's ``model`` section) lives in :mod:`polymodal.models.config`; the names
below import every model module (registering its components) on first use, so validating a recipe stays light.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.models.bridge import BridgeProjector, CMCRProjector
    from polymodal.models.build import ARCHITECTURES, CAPABILITIES, build_model
    from polymodal.models.encoders import ENCODERS, LeNetEncoder, SpectrogramCNNEncoder, TransformerEncoder
    from polymodal.models.from_run import RunEncoder, adopt_adapter_settings
    from polymodal.models.fusion import FUSIONS, ConcatFusion, LateFusion, LowRankFusion, TensorFusion
    from polymodal.models.heads import HEADS, LinearHead, MLPHead
    from polymodal.models.hf import HFEncoder
    from polymodal.models.moe import MixtureOfExperts
    from polymodal.models.multimodal import MultimodalModel
    from polymodal.models.multimodel import MultiModel
    from polymodal.models.stream import MoMoModel, StreamEncoder

_LAZY = {
    "BridgeProjector": "bridge",
    "CMCRProjector": "bridge",
    "ARCHITECTURES": "build",
    "CAPABILITIES": "build",
    "build_model": "build",
    "ENCODERS": "encoders",
    "LeNetEncoder": "encoders",
    "SpectrogramCNNEncoder": "encoders",
    "TransformerEncoder": "encoders",
    "RunEncoder": "from_run",
    "adopt_adapter_settings": "from_run",
    "FUSIONS": "fusion",
    "ConcatFusion": "fusion",
    "LateFusion": "fusion",
    "LowRankFusion": "fusion",
    "TensorFusion": "fusion",
    "HEADS": "heads",
    "LinearHead": "heads",
    "MLPHead": "heads",
    "HFEncoder": "hf",
    "MixtureOfExperts": "moe",
    "MultimodalModel": "multimodal",
    "MultiModel": "multimodel",
    "MoMoModel": "stream",
    "StreamEncoder": "stream",
}

__all__ = [
    "ARCHITECTURES",
    "CAPABILITIES",
    "ENCODERS",
    "FUSIONS",
    "HEADS",
    "BridgeProjector",
    "CMCRProjector",
    "ConcatFusion",
    "HFEncoder",
    "LateFusion",
    "LeNetEncoder",
    "LinearHead",
    "LowRankFusion",
    "MLPHead",
    "MixtureOfExperts",
    "MoMoModel",
    "MultiModel",
    "MultimodalModel",
    "SpectrogramCNNEncoder",
    "StreamEncoder",
    "TensorFusion",
    "RunEncoder",
    "TransformerEncoder",
    "adopt_adapter_settings",
    "build_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        for module in dict.fromkeys(_LAZY.values()):  # every module, so each registry holds all its components
            importlib.import_module(f"{__name__}.{module}")
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
