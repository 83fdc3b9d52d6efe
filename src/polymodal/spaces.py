"""Pretrained contrastive spaces, their memory banks, and Ex-MCR pseudo-pairs between two spaces.

A contrastive space embeds each of its modalities into one L2-normalised space. Ex-MCR (arXiv 2310.08884) extends a
frozen *base* space with a *leaf* space that shares one *overlapping* modality with it (e.g. image-text base and
audio-text leaf, overlapping through text), using no pair across the two spaces: each space embeds its own unpaired
modality-centric data into memory banks, and :func:`pseudo_pairs` links the banks through the overlapping modality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from polymodal.errors import ConfigError
from polymodal.models import CMCRProjector
from polymodal.objectives import aggregate
from polymodal.runs import item_batches, load_run, model_embeddings

BASE, LEAF = "base", "leaf"


class ContrastiveSpace:
    """A frozen pretrained contrastive space: one encoder per modality into one normalised embedding space.

    Implementations hold their own weights and never expose them to an optimizer; ``embed`` runs without gradients.
    """

    @property
    def modalities(self) -> list[str]:
        """The modalities the space can embed."""
        raise NotImplementedError

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality, already converted by the space's own adapter -> (B, D) L2-normalised
        embeddings."""
        raise NotImplementedError

    def takes_tensors(self, modality: str) -> bool:
        """Whether ``embed`` takes polymodal's collated tensors of ``modality`` (else only ``embed_items`` works)."""
        return False

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        """Raw inputs of one modality (file paths for image/audio, strings for text) -> (N, D) L2-normalised
        float32 embeddings; each space converts them with its own preprocessing."""
        raise NotImplementedError


class ModelSpace(ContrastiveSpace):
    """A contrastive space over a polymodal model with ``encode(inputs, lengths) -> {modality: (B, D)}``.

    Models with contrastive projections (``contrastive`` true: a ``contrastive`` run's ``MultimodalModel``, MoMo)
    embed through them (``project``); other models' per-modality features must share one width. The model is put
    in eval mode and its parameters stop requiring gradients, so neither dropout nor batch-norm statistics nor an
    optimizer can change it: embeddings are reproducible bit for bit. This is a plain object, not an
    ``nn.Module``, so the space's weights never become part of a strategy's model or checkpoint.

    Args:
        model: a trained model.
        device: where the model runs.
        data: the run's ``DataConfig``, whose adapters convert raw inputs for ``embed_items``.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", data: Any = None) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.data = data

    @property
    def modalities(self) -> list[str]:
        return list(self.model.modalities)

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) inputs of one modality -> (B, D) L2-normalised float32 embeddings."""
        if modality not in self.modalities:
            raise ConfigError(f"the space has no {modality!r} encoder (it has: {', '.join(self.modalities)})")
        lengths_by_modality = {} if lengths is None else {modality: lengths.to(self.device)}
        with torch.no_grad():
            features = model_embeddings(self.model, {modality: inputs.to(self.device)}, lengths_by_modality)
        return F.normalize(features[modality].float(), dim=-1)

    def takes_tensors(self, modality: str) -> bool:
        return True

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        if self.data is None:
            raise ValueError("this space was built without its data settings; it embeds tensors only")
        parts = [
            self.embed(modality, batch["inputs"][modality], batch["lengths"].get(modality)).cpu()
            for batch in item_batches(self.data, modality, items)
        ]
        return torch.cat(parts)


def load_space(run_dir: Path, device: torch.device | str = "cpu") -> ModelSpace:
    """The contrastive space of a finished polymodal run (its best weights), frozen."""
    config, _, strategy = load_run(run_dir)
    if config.spaces is not None:
        raise ConfigError(f"{run_dir}: a bridge run, not a contrastive space (bridge its spaces directly)")
    return ModelSpace(strategy.model, device, config.data)


def unified_modalities(base: ContrastiveSpace, leaf: ContrastiveSpace) -> list[str]:
    """The modalities of a bridged space: the base space's, then the leaf space's others."""
    return [*base.modalities, *(m for m in leaf.modalities if m not in base.modalities)]


class UnifiedSpace(ContrastiveSpace):
    """The space a bridge builds: base and leaf spaces linked by a trained projector.

    With Ex-MCR's :class:`~polymodal.models.BridgeProjector` the unified space *is* the base space: base modalities
    are embedded by the frozen base space unchanged, leaf-only modalities by the leaf space and then projected. With
    the C-MCR-style :class:`~polymodal.models.CMCRProjector` every modality is projected into a new space.

    Args:
        base: the base space.
        leaf: the leaf space.
        projector: the trained projector (put in eval mode, no gradients).
    """

    def __init__(self, base: ContrastiveSpace, leaf: ContrastiveSpace, projector: nn.Module) -> None:
        self.base, self.leaf = base, leaf
        self.projector = projector.eval().requires_grad_(False)
        self.device = next(projector.parameters()).device

    @property
    def modalities(self) -> list[str]:
        return unified_modalities(self.base, self.leaf)

    def _route(self, modality: str) -> tuple[ContrastiveSpace, Any]:
        if modality in self.base.modalities:
            if isinstance(self.projector, CMCRProjector):
                return self.base, self.projector.base
            return self.base, None
        if modality in self.leaf.modalities:
            return self.leaf, self.projector.leaf if isinstance(self.projector, CMCRProjector) else self.projector
        raise ConfigError(
            f"--modality {modality}: neither bridged space has it (they have: {', '.join(self.modalities)})"
        )

    def _project(self, projector: Any, embedded: Tensor) -> Tensor:
        if projector is None:
            return embedded
        with torch.no_grad():
            return projector(embedded.to(self.device)).float()

    def takes_tensors(self, modality: str) -> bool:
        return self._route(modality)[0].takes_tensors(modality)

    def embed(self, modality: str, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        space, projector = self._route(modality)
        return self._project(projector, space.embed(modality, inputs, lengths))

    def embed_items(self, modality: str, items: list[str]) -> Tensor:
        space, projector = self._route(modality)
        return self._project(projector, space.embed_items(modality, items)).cpu()


def memory_bank(space: ContrastiveSpace, modality: str, batches: Iterable[dict[str, Any]]) -> Tensor:
    """Embeds every sample of ``batches`` that has ``modality`` present into an (N, D) memory bank.

    Args:
        space: the space whose encoder embeds the modality.
        modality: the modality to embed.
        batches: polymodal batches (``inputs``, ``present``, ``lengths``), e.g. a ``DataLoader`` with ``Collate``.
            For the overlapping modality, both spaces must read the same items in the same order, so that row i of
            the two banks embeds the same item.

    Returns:
        (N, D) L2-normalised embeddings, in the order of the batches.
    """
    return embed_batches(space, modality, batches)[0]


def embed_batches(
    space: ContrastiveSpace, modality: str, batches: Iterable[dict[str, Any]], cells: dict[str, list[str]] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(N, D) embeddings, (N,) targets and (N,) sample indices of the samples of ``batches`` that have ``modality``.

    A space that takes polymodal's tensors embeds the collated inputs; any other space (pretrained weights with
    their own preprocessing) embeds the raw ``cells`` of the samples (a CSV manifest's, by sample index).
    """
    tensors = space.takes_tensors(modality)
    if not tensors and cells is None:
        raise ConfigError("data: a pretrained space embeds raw files, so its data must be a CSV manifest")
    parts, targets, indices = [], [], []
    for batch in batches:
        keep = batch["present"][modality]
        index = torch.as_tensor(batch["index"])[keep]
        if tensors:
            lengths = batch.get("lengths", {}).get(modality)
            parts.append(space.embed(modality, batch["inputs"][modality], lengths).cpu()[keep.cpu()])
        elif len(index):
            parts.append(space.embed_items(modality, [cells[modality][int(i)] for i in index]).cpu())
        targets.append(torch.as_tensor(batch["target"])[keep])
        indices.append(index)
    return torch.cat(parts), torch.cat(targets), torch.cat(indices)


def pseudo_pairs(
    base: Mapping[str, Tensor], leaf: Mapping[str, Tensor], overlap: str, temperature: float, rotate: bool = True
) -> dict[str, dict[str, Tensor]]:
    """Pseudo-pair tuples across a base and a leaf space from unpaired memory banks (Ex-MCR, Sec. 3.2).

    Every bank in turn is the query (the paper's rotation over modality-centric data): each of its rows starts one
    tuple. A query of the overlapping modality has its own embedding in both spaces (row-aligned banks). Any other
    query retrieves the overlapping modality in its own space, ``o = agg(x, O_own)``, and the softmax weights of that
    retrieval, applied to the other space's row-aligned overlap bank, give ``o`` in the other space. Every remaining
    modality ``m`` of a space is then ``agg(o, M)`` in that space. Aggregated embeddings are re-normalised.

    Args:
        base: base modality -> (N_m, D_base) L2-normalised memory bank.
        leaf: leaf modality -> (N_m, D_leaf) L2-normalised memory bank.
        overlap: the modality both spaces have; ``base[overlap]`` and ``leaf[overlap]`` embed the same items, row by
            row.
        temperature: ``tau`` of :func:`~polymodal.objectives.aggregate`.
        rotate: every bank in turn is the query (Ex-MCR); False: only the overlapping modality's bank (C-MCR).

    Returns:
        ``{"base": {modality: (N, D_base)}, "leaf": {modality: (N, D_leaf)}}`` where row i of every tensor belongs to
        tuple i. Tuples are ordered by query bank: the overlapping modality first, then the base's other modalities,
        then the leaf's, each in its mapping's order.
    """
    if len(base[overlap]) != len(leaf[overlap]):
        raise ValueError(
            f"the {overlap} banks must embed the same items: "
            f"{len(base[overlap])} rows in base, {len(leaf[overlap])} in leaf"
        )
    banks = {BASE: base, LEAF: leaf}
    queries = [(BASE, overlap)] + [(s, m) for s in (BASE, LEAF) for m in banks[s] if m != overlap and rotate]
    tuples = [_tuples(banks, space, modality, overlap, temperature) for space, modality in queries]
    return {s: {m: torch.cat([t[s][m] for t in tuples]) for m in banks[s]} for s in (BASE, LEAF)}


def _tuples(
    banks: dict[str, Mapping[str, Tensor]], space: str, modality: str, overlap: str, temperature: float
) -> dict[str, dict[str, Tensor]]:
    """The tuples whose query is every row of ``banks[space][modality]``."""
    query = banks[space][modality]
    other = LEAF if space == BASE else BASE
    if modality == overlap:
        anchor = {s: banks[s][overlap] for s in banks}
    else:
        own_overlap = banks[space][overlap]
        anchor = {
            space: F.normalize(aggregate(query, own_overlap, temperature), dim=-1),
            other: F.normalize(aggregate(query, own_overlap, temperature, banks[other][overlap]), dim=-1),
        }
    out: dict[str, dict[str, Tensor]] = {}
    for s, bank in banks.items():
        out[s] = {overlap: anchor[s]}
        for m, keys in bank.items():
            if m == overlap:
                continue
            out[s][m] = (
                query if (s, m) == (space, modality) else F.normalize(aggregate(anchor[s], keys, temperature), dim=-1)
            )
    return out


class PseudoPairDataset(Dataset):
    """The tuples of :func:`pseudo_pairs` as a dataset for the Trainer and the ``bridge`` strategy.

    Item i is ``{"base": {modality: (D_base,)}, "leaf": {modality: (D_leaf,)}}``; ``default_collate`` stacks items
    into the strategy's batch format.

    Args:
        pairs: the output of :func:`pseudo_pairs`.
    """

    def __init__(self, pairs: Mapping[str, Mapping[str, Tensor]]) -> None:
        self.pairs = {s: dict(banks) for s, banks in pairs.items()}
        self.size = len(next(iter(self.pairs[BASE].values())))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, dict[str, Tensor]]:
        return {s: {m: x[index] for m, x in banks.items()} for s, banks in self.pairs.items()}
