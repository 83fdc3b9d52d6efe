"""Staged pre-training of a shared image-text encoder (MoMo, Chada et al., arXiv 2304.05523)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

import torch
from pydantic import Field, model_validator
from torch import Tensor

from polymodal.data.spec import DataSpec
from polymodal.models.stream import MoMoModel, patchify
from polymodal.objectives import (
    cross_entropy,
    hard_negatives,
    info_nce,
    masked_patch_loss,
    masked_token_loss,
)
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy

DataKind = Literal["image", "text", "pair"]
ObjectiveName = Literal["mpm", "mlm", "itc", "itm"]
# Which data each objective trains on: masked patch modeling on images, masked token modeling on texts (and on the
# captions of pairs, seeing the image), contrastive and matching losses on pairs.
OBJECTIVE_DATA: dict[str, frozenset[str]] = {
    "mpm": frozenset({"image"}),
    "mlm": frozenset({"text", "pair"}),
    "itc": frozenset({"pair"}),
    "itm": frozenset({"pair"}),
}


class StageConfig(ComponentConfig):
    """One stage: which data it draws from each batch, which objectives it trains, and for how many epochs."""

    data: list[DataKind] = Field(min_length=1)
    objectives: list[ObjectiveName] = Field(min_length=1)
    epochs: int = Field(ge=1)

    @model_validator(mode="after")
    def _objectives_match_data(self) -> StageConfig:
        for kind in self.data:
            if not any(kind in OBJECTIVE_DATA[o] for o in self.objectives):
                raise ValueError(f"data {kind!r} has no objective among {self.objectives}")
        for name in self.objectives:
            if not OBJECTIVE_DATA[name] & set(self.data):
                raise ValueError(f"objective {name!r} has no data among {self.data}")
        return self


# MoMo's schedule (arXiv 2304.05523): images alone, then images and texts (each unimodal), then texts and pairs.
MOMO_STAGES = [
    {"data": ["image"], "objectives": ["mpm"], "epochs": 2},
    {"data": ["image", "text"], "objectives": ["mpm", "mlm"], "epochs": 2},
    {"data": ["text", "pair"], "objectives": ["mlm", "itc", "itm"], "epochs": 8},
]


class StagedConfig(ComponentConfig):
    stages: list[StageConfig] = [StageConfig(**s) for s in MOMO_STAGES]
    updates: Literal["simultaneous", "alternating"] = "simultaneous"
    patch_mask_ratio: float = Field(0.5, gt=0, lt=1)
    token_mask_ratio: float = Field(0.15, gt=0, lt=1)
    label_aware_negatives: bool = True
    balanced_matching: bool = True


def random_patch_mask(batch: int, patches: int, ratio: float, device: torch.device) -> Tensor:
    """(B, P) bool with exactly ``round(ratio * P)`` (at least 1) patches hidden per sample, uniformly at random."""
    hidden = max(1, round(ratio * patches))
    ranks = torch.rand(batch, patches, device=device).argsort(dim=1).argsort(dim=1)
    return ranks < hidden


def random_token_mask(lengths: Tensor, steps: int, ratio: float) -> Tensor:
    """(B, L) bool hiding each valid token with probability ``ratio``, and always at least one per text."""
    valid = torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
    mask = (torch.rand(valid.shape, device=lengths.device) < ratio) & valid
    forced = (torch.rand(valid.shape, device=lengths.device) * valid).argmax(dim=1)
    return mask | (torch.nn.functional.one_hot(forced, steps).bool() & valid)


@STRATEGIES.register("staged", StagedConfig)
class StagedStrategy(Strategy[MoMoModel, StagedConfig]):
    """MoMo: one shared encoder pre-trained in stages, with cross-modal simultaneous gradient accumulation.

    Each stage names the data it draws from every batch (``image`` alone, ``text`` alone, ``pair`` = image and
    caption together) and its objectives: masked patch modeling (``mpm``, SimMIM-style pixel regression), masked
    token modeling (``mlm``; on pairs the text sees the image: shared stream, or the dual model's fusion stack),
    image-text contrastive (``itc``, symmetric InfoNCE with the model's learnable temperature) and image-text matching
    (``itm``, with ALBEF's similarity-drawn hard negatives). MoMo (arXiv 2304.05523) accumulates the gradients of
    every active modality's batch and applies them in one update (``updates: simultaneous``); ``updates:
    alternating`` gives each data kind its own optimizer update instead, to test that claim.

    The model's linear probes are trained every step on detached pooled features of the unmasked inputs; they never
    change the encoder and give the validation accuracy the Trainer selects on (``predict``).

    Departures from the paper, deliberate at CPU scale: stage lengths are in epochs of one dataset of pairs (each
    stage draws its data kinds from the same batches); masked tokens are always replaced by ``[MASK]`` (no 80/10/10
    split); with ``label_aware_negatives`` a sample of the same target is never a contrastive or matching negative,
    because on digit captions a same-digit caption is a true match (duplicates are rare in the paper's web data);
    with ``balanced_matching`` the ``itm`` loss weighs its positives and hard negatives equally (ALBEF's is 1:2).

    Args:
        model: a ``MoMoModel`` (shared single stream or the dual-stream baseline).
        data: the data's description: image and text inputs, ``classification`` (the probes classify the target).
        stages: the schedule; ``trainer.epochs`` must cover the sum of their epochs, and the last stage continues
            if training runs past it.
        updates: ``"simultaneous"`` (one update per batch) or ``"alternating"`` (one per data kind).
        patch_mask_ratio: fraction of image patches hidden for ``mpm``.
        token_mask_ratio: probability of hiding each text token for ``mlm``.
        label_aware_negatives: exclude same-target samples from the negatives of ``itc`` and ``itm``.
        balanced_matching: weight the ``itm`` loss so the positives (one per pair) and the hard negatives (two per
            pair) count equally; without it the constant "no match" answer already scores 2/3 and is where the head
            settles (it is chance, 50 %, on the balanced matching evaluation).
    """

    representation: ClassVar[bool] = True

    @classmethod
    def needs(cls, options: StagedConfig) -> Needs:
        lengths = [s.epochs for s in options.stages]
        epochs = (sum(lengths), "strategy.stages", " + ".join(map(str, lengths)))
        inputs = {"image": "strategy.name", "text": "strategy.name"}
        return Needs(model={"stream": "strategy.name"}, tasks=("classification",), inputs=inputs, epochs=epochs)

    def __init__(
        self,
        model: MoMoModel,
        data: DataSpec,
        stages: list[dict[str, Any]],
        updates: str,
        patch_mask_ratio: float,
        token_mask_ratio: float,
        label_aware_negatives: bool,
        balanced_matching: bool = True,
    ) -> None:
        super().__init__(model, data)
        self.stages = stages
        self.updates = updates
        self.patch_mask_ratio = patch_mask_ratio
        self.token_mask_ratio = token_mask_ratio
        self.label_aware_negatives = label_aware_negatives
        self.balanced_matching = balanced_matching
        self.stage = 0

    def on_epoch_start(self, epoch: int) -> None:
        ends = torch.tensor([s["epochs"] for s in self.stages]).cumsum(0)
        self.stage = min(int((ends <= epoch).sum()), len(self.stages) - 1)

    def substeps(self, batch: dict[str, Any]) -> list[Any]:
        kinds = self.stages[self.stage]["data"]
        if self.updates == "alternating":
            return [{**batch, "data": [kind]} for kind in kinds]
        return [{**batch, "data": list(kinds)}]

    def step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        kinds = set(batch.get("data", self.stages[self.stage]["data"]))
        objectives = set(self.stages[self.stage]["objectives"])
        inputs, lengths = batch["inputs"], batch["lengths"].get("text")
        parts: dict[str, Tensor] = {}
        features: dict[str, Tensor] = {}
        if "image" in kinds and "mpm" in objectives:
            parts["mpm"] = self._masked_patches(inputs["image"])
        if "text" in kinds and "mlm" in objectives:
            parts["mlm"] = self._masked_tokens(inputs["text"], lengths)
        if "pair" in kinds:
            if "mlm" in objectives:
                parts["mlm_pair"] = self._masked_tokens(inputs["text"], lengths, inputs["image"])
            if objectives & {"itc", "itm"}:
                features = self.model.encode(inputs, batch["lengths"])
                projected = self.model.project(features)
                same = batch["target"][:, None] == batch["target"][None, :] if self.label_aware_negatives else None
                if "itc" in objectives:
                    scale = self.model.logit_scale.exp()
                    parts["itc"] = info_nce(projected["image"], projected["text"], scale, same)
                if "itm" in objectives:
                    parts["itm"] = self._matching(inputs["image"], inputs["text"], lengths, projected, same)
        parts["probe"] = self._probe(batch, kinds, features)
        loss = cast(Tensor, sum(parts.values()))  # a tensor: "probe" is always there
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    def _masked_patches(self, image: Tensor) -> Tensor:
        encoder = self.model.encoder
        mask = random_patch_mask(image.shape[0], encoder.num_patches, self.patch_mask_ratio, image.device)
        prediction = self.model.reconstruct_patches(image, mask)
        return masked_patch_loss(prediction, patchify(image, encoder.patch_size), mask)

    def _masked_tokens(self, text: Tensor, lengths: Tensor, image: Tensor | None = None) -> Tensor:
        mask = random_token_mask(lengths, text.shape[1], self.token_mask_ratio)
        masked = text.masked_fill(mask, self.model.encoder.mask_id)
        return masked_token_loss(self.model.predict_tokens(masked, lengths, image), text, mask)

    def _matching(
        self, image: Tensor, text: Tensor, lengths: Tensor, projected: dict[str, Tensor], same: Tensor | None
    ) -> Tensor:
        similarity = projected["image"] @ projected["text"].T
        rows = torch.arange(len(image), device=image.device)
        negative_text = hard_negatives(similarity, same)  # a hard caption for each image
        negative_image = hard_negatives(similarity.T, same)  # a hard image for each caption
        # A row with no allowed negative comes back as itself; it is dropped rather than mislabelled.
        keep_t, keep_i = negative_text != rows, negative_image != rows
        images = torch.cat([image, image[keep_t], image[negative_image[keep_i]]])
        texts = torch.cat([text, text[negative_text[keep_t]], text[keep_i]])
        text_lengths = torch.cat([lengths, lengths[negative_text[keep_t]], lengths[keep_i]])
        target = torch.cat([torch.ones_like(rows), torch.zeros(len(images) - len(rows), dtype=torch.long)])
        logits = self.model.match(images, texts, text_lengths)
        target = target.to(image.device)
        if not self.balanced_matching or len(images) == len(rows):
            return cross_entropy(logits, target)
        # Each class's mean loss, averaged: positives and negatives weigh the same whatever their counts.
        losses = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
        return 0.5 * (losses[: len(rows)].mean() + losses[len(rows) :].mean())

    def _probe(self, batch: dict[str, Any], kinds: set[str], features: dict[str, Tensor]) -> Tensor:
        modalities = [m for m in ("image", "text") if m in kinds or "pair" in kinds]
        missing = [m for m in modalities if m not in features]
        if missing:
            with torch.no_grad():
                features = {**features, **self.model.encode({m: batch["inputs"][m] for m in missing}, batch["lengths"])}
        losses = [cross_entropy(self.model.probes[m](features[m].detach()), batch["target"]) for m in modalities]
        return torch.stack(losses).sum()

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Mean of the probes' log-probabilities (B, C) over each sample's present modalities."""
        return self.predict_features(self.encode(batch), batch["present"])

    def encode(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Pooled (B, D) features of the image and text in ``batch``, each encoded alone."""
        inputs = {m: batch["inputs"][m] for m in self.model.modalities if m in batch["inputs"]}
        return self.model.encode(inputs, batch.get("lengths"))

    def predict_features(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        total: Tensor | float = 0.0
        count: Tensor | float = 0.0
        for m, f in features.items():
            weight = present[m].to(f.dtype)[:, None]
            total = total + torch.log_softmax(self.model.probes[m](f).float(), dim=-1) * weight
            count = count + weight
        return total / torch.as_tensor(count).clamp(min=1.0)

    def embed(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Pooled (B, D) and projected image and text features, each encoded alone (for frozen evaluation)."""
        features = self.model.encode({m: batch["inputs"][m] for m in ("image", "text")}, batch["lengths"])
        projected = self.model.project(features)
        return {**features, **{f"{m}_projected": v for m, v in projected.items()}}

    def match(self, batch: dict[str, Any], order: Tensor) -> Tensor:
        """Matching logits (B, 2) of image i with the text ``order[i]`` of the same batch."""
        text, lengths = batch["inputs"]["text"][order], batch["lengths"]["text"][order]
        return self.model.match(batch["inputs"]["image"], text, lengths)

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])
