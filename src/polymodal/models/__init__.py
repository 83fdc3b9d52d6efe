"""Encoders, fusions, heads and the assembled models built from them.

Reusable blocks (an encoder, a fusion, a head) each live in their own file and register themselves; assembled
architectures (``MultimodalModel``) receive built parts. Losses do not belong here: a model's ``forward`` returns
outputs, and the strategy applies objectives from ``polymodal.objectives``.
"""

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
