"""Training strategies: one recipe per file, each owning what one training step does.

A strategy receives the built model and the description of the data (``polymodal.data.spec.DataSpec``), declares
what it needs from both (``needs``, checked when a config is validated) and implements the small contract in
``base.py``: ``step(batch) -> dict`` with a ``"loss"`` key, ``predict(batch)``, ``param_groups()``, hooks
(``after_backward``, ``on_epoch_start``) and ``state_dict``. The loop itself lives only in ``polymodal.training``.
"""

from polymodal.strategies.alternating import AlternatingStrategy
from polymodal.strategies.base import STRATEGIES, Needs, Strategy
from polymodal.strategies.bridge import BridgeStrategy
from polymodal.strategies.contrastive import ContrastiveStrategy
from polymodal.strategies.joint import JointStrategy
from polymodal.strategies.multitask import MultitaskStrategy
from polymodal.strategies.self_mi import SelfMIStrategy
from polymodal.strategies.staged import StagedStrategy
from polymodal.strategies.unimodal import UnimodalStrategy

__all__ = [
    "STRATEGIES",
    "AlternatingStrategy",
    "BridgeStrategy",
    "ContrastiveStrategy",
    "JointStrategy",
    "MultitaskStrategy",
    "Needs",
    "SelfMIStrategy",
    "StagedStrategy",
    "Strategy",
    "UnimodalStrategy",
]
