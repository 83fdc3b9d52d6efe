"""The strategy contract shared by every training recipe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from torch import Tensor, nn

from polymodal.data.spec import DataSpec
from polymodal.objectives import cross_entropy, l1_loss
from polymodal.registry import ComponentConfig, Registry

STRATEGIES = Registry("strategy")

TASK_KINDS = ("classification", "regression")

ModelT = TypeVar("ModelT", bound=nn.Module)
OptionsT = TypeVar("OptionsT", bound=ComponentConfig)


class SplitModel(Protocol):
    """A model whose outputs split into per-modality features and their fusion (``MultimodalModel``)."""

    def encode(self, inputs: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Modality -> (B, D_m) features of the modalities in ``inputs``."""

    def fuse(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """(B, C) outputs from per-modality features and presence masks."""


@dataclass(frozen=True)
class Needs:
    """What a strategy needs from the model and the data, declared so a config is checked before anything is built.

    Every requirement names the strategy setting that asks for it, so a refusal (``polymodal.config``) names both
    sides in one line.

    Attributes:
        model: capability (a name of ``polymodal.models.CAPABILITIES``) -> the strategy setting that needs it.
        tasks: the target kinds (``data.task``) the strategy trains.
        task_table: True: the data's samples each belong to one of several tasks (``DataSpec.tasks``); False: one
            target per sample.
        inputs: modality the data must have -> the strategy setting that needs it.
        min_modalities: the fewest input modalities the data may have.
        epochs: ``(n, setting, why)``: the strategy needs ``trainer.epochs >= n`` because of ``setting``.
    """

    model: Mapping[str, str] = field(default_factory=lambda: {"outputs": "strategy.name"})
    tasks: tuple[str, ...] = TASK_KINDS
    task_table: bool = False
    inputs: Mapping[str, str] = field(default_factory=dict)
    min_modalities: int = 1
    epochs: tuple[int, str, str] | None = None


class Strategy(Generic[ModelT, OptionsT]):
    """Base strategy: supervised loss on the model's output.

    Subclasses override ``step`` (what one optimisation step computes) and ``predict`` (the evaluation output), and
    with ``predict`` the pair ``encode`` / ``predict_features`` it splits into, so that evaluation can score every
    modality subset from one encoder pass, and declare what they need in ``needs``.

    Args:
        model: the assembled model; its ``forward(inputs, present, lengths)`` returns (B, C) outputs.
        data: the description of the run's data; ``data.task`` is ``"classification"`` (cross-entropy) or
            ``"regression"`` (L1).
    """

    # Whether the strategy has ``embed`` and ``match`` for the frozen-feature evaluation (``eval.representation``).
    representation: ClassVar[bool] = False

    def __init__(self, model: ModelT, data: DataSpec) -> None:
        self.model = model
        self.data = data
        self.task = data.task

    @classmethod
    def needs(cls, options: OptionsT) -> Needs:
        """What the strategy needs with these options (its validated config); default: a model with fused
        outputs, either task kind, any data with one target per sample."""
        return Needs()

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """The task's supervised loss on (B, C) outputs."""
        return cross_entropy(outputs, target) if self.task == "classification" else l1_loss(outputs, target)

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Evaluation outputs (B, C) for a batch (the model in eval mode is the caller's job)."""
        return self.model(batch["inputs"], batch["present"], batch.get("lengths"))

    def encode(self, batch: dict[str, Any]) -> dict[str, Tensor] | None:
        """Per-modality features of the modalities in ``batch["inputs"]``, from which ``predict_features`` computes
        the outputs of any subset of them: evaluation then scores the fused model, each modality alone, each one
        removed and each noise level from one encoder pass (a noise level re-encodes the noised modality only).

        Each modality's features must depend on that modality's inputs only, and
        ``predict_features(encode(batch), batch["present"])`` must equal ``predict(batch)``. ``None``, whatever the
        batch, means the outputs cannot be split so: evaluation runs ``predict`` once per modality subset instead.
        That is the default for a model without ``encode`` and ``fuse`` and for a subclass that overrides
        ``predict`` but not ``encode``.
        """
        split = type(self).predict is Strategy.predict and all(hasattr(self.model, a) for a in ("encode", "fuse"))
        return cast(SplitModel, self.model).encode(batch["inputs"], batch.get("lengths")) if split else None

    def predict_features(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """Evaluation outputs (B, C) from ``encode``'s features and presence masks (B,) per modality.

        A modality that ``present`` marks absent for a sample has, in ``features``, what ``encode`` gives for a
        missing sample (zero inputs), exactly what ``predict`` would see with that modality dropped.
        """
        return cast(SplitModel, self.model).fuse(features, present)

    def evaluate(self, loader: Any, device: Any, plots_dir: Path | None = None) -> dict[str, Any] | None:
        """The strategy's own evaluation report, for outputs the standard report cannot score (default: none).

        A strategy whose outputs are not (B, C) class scores or regression values (e.g. per-task text and classes)
        returns ``{"metrics": {name: float}, ...}``: ``metrics`` is logged and used for selection every epoch, and
        the rest goes into ``metrics.json`` beside it. ``None`` means the run uses the standard report.
        """
        return None

    def batch_sampler(self, dataset: Any, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        """A sampler of index lists that fixes which samples share a batch, or None for the Trainer's shuffle.

        It must depend only on (seed, epoch) and offer ``set_position(epoch, skip_batches)`` so resume works, and
        shard by ``rank`` under ``torchrun`` (MultiModel: single-task batches in a task order).
        """
        return None

    def substeps(self, batch: dict[str, Any]) -> list[Any]:
        """The parts of a batch that each get their own optimizer update (default: the whole batch, once).

        A strategy that updates once per modality (MLA) returns one part per modality; ``step`` receives each.
        """
        return [batch]

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """One training step's losses; ``"loss"`` is what the Trainer backpropagates."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimizer (trainable parameters only).

        A module with an ``lr_scale`` other than 1 (an ``hf`` or ``from_run`` encoder) gets a group of its own with
        that ``lr_scale``, which the optimizer multiplies into its learning rate; the rest share one group.
        """
        groups: list[dict[str, Any]] = []
        scaled: set[int] = set()
        for module in self.model.modules():
            scale = getattr(module, "lr_scale", 1.0)
            if not isinstance(scale, float) or scale == 1.0 or any(id(p) in scaled for p in module.parameters()):
                continue
            params = [p for p in module.parameters() if p.requires_grad]
            scaled.update(id(p) for p in module.parameters())
            if params:
                groups.append({"params": params, "lr_scale": scale})
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in scaled]
        return [{"params": rest}, *groups] if rest or not groups else groups

    def after_backward(self) -> None:
        """Hook between backward and the optimizer step (e.g. gradient projection)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Hook at the start of every epoch (e.g. stage changes)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable strategy state saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what ``state_dict`` returned."""
