"""Alternating unimodal adaptation (MLA, Zhang et al., CVPR 2024, arXiv 2311.10707)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from polymodal.data.spec import DataSpec
from polymodal.errors import ConfigError
from polymodal.models.multimodal import MultimodalModel
from polymodal.objectives import project_gradient, update_projector
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class AlternatingConfig(ComponentConfig):
    projection: bool = True
    alpha: float = Field(1.0, gt=0)
    alpha_decay: float = Field(0.1, gt=0, le=1)
    decay_updates: int = Field(1000, ge=1)
    lr_scale: dict[str, float] = Field(default_factory=dict)
    combine: Literal["logits", "probabilities"] = "logits"


def entropy_weights(logits: Tensor, present: Tensor) -> Tensor:
    """MLA's test-time fusion weights: a softmax over modalities of minus each prediction's entropy, per sample.

    ``w_m = exp(-e_m) / sum_k exp(-e_k)`` with ``e_m`` the entropy of modality m's softmax (arXiv 2311.10707,
    eq. 9; the paper's ``max_k e_k`` shift cancels in the softmax). Absent modalities get weight 0.

    Args:
        logits: per-modality outputs, (B, M, C).
        present: (B, M) bool.

    Returns:
        Weights (B, M) summing to 1 over the present modalities of each sample.
    """
    # A sample with no present modality would get all -inf scores; it falls back to equal weights.
    present = present | ~present.any(dim=1, keepdim=True)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, M)
    return torch.softmax((-entropy).masked_fill(~present, float("-inf")), dim=1)


@STRATEGIES.register("alternating", AlternatingConfig)
class AlternatingStrategy(Strategy[MultimodalModel, AlternatingConfig]):
    """MLA: one update per modality per batch, each through that modality's encoder and the shared head.

    Training alternates modalities so no modality can lean on another (modality laziness). With ``projection``, the
    gradient of every linear layer of the shared head is multiplied by a projector (OWM) that is updated after each
    step from the mean input of that layer, so a modality's update disturbs little of what earlier modalities taught
    the head. ``alpha`` decays as ``alpha * alpha_decay ** (updates / decay_updates)``: the paper decays it during
    training; the schedule here is explicit and independent of the epoch length. At test time the per-modality
    outputs of the shared head are combined with entropy weights (:func:`entropy_weights`): by default the logits
    are weighted before the softmax, as in the MLA code that third-party reruns (issue #5) quote and follow
    (``combine: logits``); ``combine: probabilities`` weights the softmax outputs instead, a mixture that cannot add up
    the evidence of two modalities that are each unsure (on AV-MNIST the same MLA checkpoints lose 0.3-2.6 validation
    and 1.2-6.7 test points with it, see ``benchmarks/results/avmnist.md``).

    Departures from the released code (github.com/CXianRen/MLA, see issue #5): the projection actually runs (the
    released code never reaches it through a name mismatch), and models are selected on validation, never test.

    Args:
        model: a model with ``encoders`` and a ``head`` over features of equal size (``late`` fusion).
        data: the data's description: ``classification`` (entropy-weighted fusion) or ``regression`` (the present
            modalities' mean).
        projection: project the shared head's gradients.
        alpha: initial OWM regulariser.
        alpha_decay: factor alpha is multiplied by every ``decay_updates`` updates.
        decay_updates: updates (one per modality per batch) over which alpha decays by ``alpha_decay``.
        lr_scale: per-modality learning-rate factors, e.g. ``{"audio": 2.0}`` (missing modalities: 1). Modality m's
            update (its encoder and the shared head) has its gradients multiplied by the factor after the projection
            and before the optimizer step: with SGD that multiplies the update's learning rate (weight decay, which
            the optimizer adds, is not scaled); adaptive optimizers (AdamW) largely undo such a scale.
        combine: what the entropy weights average at test time: ``"logits"`` (the shared head's outputs, then a
            softmax) or ``"probabilities"`` (each modality's softmax).
    """

    @classmethod
    def needs(cls, options: AlternatingConfig) -> Needs:
        return Needs(model={"shared_head": "strategy.name"})

    def __init__(
        self,
        model: MultimodalModel,
        data: DataSpec,
        projection: bool,
        alpha: float,
        alpha_decay: float,
        decay_updates: int,
        lr_scale: dict[str, float],
        combine: str,
    ) -> None:
        super().__init__(model, data)
        unknown = sorted(set(lr_scale) - set(model.encoders))
        if unknown or any(not (v > 0) for v in lr_scale.values()):
            raise ConfigError(
                f"strategy.lr_scale: needs positive factors for modalities of {sorted(model.encoders)} ({lr_scale})"
            )
        self.lr_scale = dict(lr_scale)
        self.combine = combine
        self._modality: str | None = None
        self.projection = projection
        self.alpha, self.alpha_decay, self.decay_updates = alpha, alpha_decay, decay_updates
        self.updates = 0
        self._layers = {n: m for n, m in model.head.named_modules() if isinstance(m, nn.Linear)}
        self.projectors = {n: torch.eye(m.in_features) for n, m in self._layers.items()}
        self._inputs: dict[str, Tensor] = {}
        for name, layer in self._layers.items():
            layer.register_forward_pre_hook(self._record(name))

    def _record(self, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            if module.training and torch.is_grad_enabled():
                self._inputs[name] = args[0].detach().float().mean(0)

        return hook

    def substeps(self, batch: dict[str, Any]) -> list[Any]:
        return [{"modality": m, "batch": batch} for m in self.model.encoders if m in batch["inputs"]]

    def _logits(self, batch: dict[str, Any], modality: str) -> Tensor:
        features = self.model.encode({modality: batch["inputs"][modality]}, batch.get("lengths"))
        return self.model.head(features[modality])

    def step(self, part: dict[str, Any]) -> dict[str, Tensor]:
        modality, batch = part["modality"], part["batch"]
        keep = batch["present"][modality]
        self._modality = modality
        logits = self._logits(batch, modality)
        loss = self.loss(logits[keep], batch["target"][keep]) if bool(keep.any()) else logits.sum() * 0.0
        return {"loss": loss, f"{modality}_loss": loss.detach()}

    def after_backward(self) -> None:
        if self.projection:
            alpha = self.alpha * self.alpha_decay ** (self.updates / self.decay_updates)
            for name, layer in self._layers.items():
                projector = self.projectors[name].to(layer.weight.device)
                if layer.weight.grad is not None:
                    grad = project_gradient(layer.weight.grad.float(), projector)
                    layer.weight.grad.copy_(grad.to(layer.weight.grad.dtype))
                if name in self._inputs:
                    self.projectors[name] = update_projector(projector, self._inputs[name].to(projector), alpha)
        modality = self._modality
        scale = self.lr_scale.get(modality, 1.0) if modality is not None else 1.0
        if modality is not None and scale != 1.0:
            # Only this update's modules have gradients (the Trainer zeroes them, set_to_none, before each update).
            for module in (self.model.encoders[modality], self.model.head):
                for p in module.parameters():
                    if p.grad is not None:
                        p.grad.mul_(scale)
        self._inputs.clear()
        self.updates += 1

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Class log-probabilities (B, C) of the entropy-weighted per-modality outputs (see ``combine``); for
        regression, the mean (B, 1) of the present modalities' outputs (an entropy needs a class distribution)."""
        return self.predict_features(self.encode(batch), batch["present"])

    def encode(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.model.encode(batch["inputs"], batch.get("lengths"))

    def predict_features(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        names = list(features)
        logits = torch.stack([self.model.head(features[m]) for m in names], dim=1).float()  # (B, M, C)
        mask = torch.stack([present[m] for m in names], dim=1)
        if self.task == "regression":
            weights = mask.to(logits.dtype).unsqueeze(-1)
            return (logits * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        weights = entropy_weights(logits, mask).unsqueeze(-1)  # absent modalities weigh 0
        if self.combine == "logits":
            return torch.log_softmax((weights * logits).sum(1), dim=-1)
        probs = (weights * torch.softmax(logits, dim=-1)).sum(1)
        return probs.clamp_min(1e-12).log()

    def state_dict(self) -> dict[str, Any]:
        # Projectors are (D, D) for the head's input sizes (64 x 64 for the bundled recipe), small enough for JSON.
        return {"updates": self.updates, "projectors": {n: p.cpu().tolist() for n, p in self.projectors.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.projectors = {n: torch.tensor(p, dtype=torch.float32) for n, p in state["projectors"].items()}
