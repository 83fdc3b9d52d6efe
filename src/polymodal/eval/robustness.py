"""Robustness probes: drop, isolate or corrupt modalities in a batch and measure how a model's score changes.

The transforms are pure functions of a collated batch (see :mod:`polymodal.data.collate`) and return a new batch.
The drivers run any ``predict(batch) -> Tensor`` callable over a loader once per modality subset; a
:class:`SubsetScorer` scores every subset of a :class:`Predictor` that splits into per-modality features from one
encoder pass. Neither needs the model class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor

from polymodal.data.collate import move_to
from polymodal.progress import progress

Batch = dict[str, Any]
Predict = Callable[[Batch], Tensor]
Score = Callable[[Tensor, Tensor], float]
Features = dict[str, Tensor]


class Predictor(Protocol):
    """What a :class:`SubsetScorer` calls (a strategy is one, see :class:`polymodal.strategies.base.Strategy`).

    ``predict(batch)`` gives outputs (B, C) or (B,); ``encode(batch)`` the features of each modality in
    ``batch["inputs"]`` (each from that modality's inputs alone), or None when the outputs cannot be split so;
    ``predict_features(features, present)`` the outputs from such features and presence masks, equal to ``predict``
    on a batch whose modalities absent in ``present`` are dropped (given, for those, ``encode``'s features of a
    missing sample).
    """

    def predict(self, batch: Batch) -> Tensor: ...

    def encode(self, batch: Batch) -> Features | None: ...

    def predict_features(self, features: Features, present: dict[str, Tensor]) -> Tensor: ...


# Byte-level token ids: 0 is padding, 1 is reserved, bytes 0..255 map to ids 2..257.
FIRST_BYTE_TOKEN = 2
LAST_BYTE_TOKEN = 257


def _copy(batch: Batch) -> Batch:
    """Copies the top level and the per-modality dicts, sharing the tensors."""
    out = dict(batch)
    for key in ("inputs", "present", "lengths"):
        if key in batch:
            out[key] = dict(batch[key])
    return out


def _check_modalities(batch: Batch, modalities: Iterable[str]) -> list[str]:
    modalities = [modalities] if isinstance(modalities, str) else list(modalities)
    unknown = [m for m in modalities if m not in batch["inputs"]]
    if unknown:
        raise ValueError(f"batch has no modality {unknown[0]!r} (it has: {', '.join(batch['inputs'])})")
    return modalities


def drop_modalities(batch: Batch, modalities: Iterable[str]) -> Batch:
    """Marks modalities as missing in every sample, as collate does for a sample that lacks them.

    Args:
        batch: a collated batch; it is not modified.
        modalities: names of the modalities to drop.

    Returns:
        A new batch whose dropped modalities have zero inputs, ``present`` all False and (for sequences) zero lengths.
    """
    out = _copy(batch)
    for m in _check_modalities(batch, modalities):
        out["inputs"][m] = torch.zeros_like(batch["inputs"][m])
        out["present"][m] = torch.zeros_like(batch["present"][m], dtype=torch.bool)
        if m in out.get("lengths", {}):
            out["lengths"][m] = torch.zeros_like(batch["lengths"][m])
    return out


def keep_only(batch: Batch, modality: str) -> Batch:
    """Drops every modality but one.

    Args:
        batch: a collated batch; it is not modified.
        modality: the modality to keep.

    Returns:
        A new batch in which only ``modality`` may be present.
    """
    _check_modalities(batch, [modality])
    return drop_modalities(batch, [m for m in batch["inputs"] if m != modality])


def _valid_mask(batch: Batch, modality: str) -> Tensor:
    """True at real data: present samples and, for sequences, steps before the length; (B, L) or (B,)."""
    present = batch["present"][modality].bool()
    x = batch["inputs"][modality]
    lengths = batch.get("lengths", {}).get(modality)
    if lengths is None:
        return present
    steps = torch.arange(x.shape[1], device=x.device)
    return present[:, None] & (steps[None, :] < lengths.to(x.device)[:, None])


def add_noise(batch: Batch, modality: str, level: float, generator: torch.Generator) -> Batch:
    """Corrupts one modality of the present samples.

    Float inputs get Gaussian noise with std ``level * std(x)``, where ``std(x)`` is taken over the modality's real
    values in this batch (present samples, and for sequences the steps before each length); padding and missing
    samples stay zero. Token ids (integer inputs) have each non-padding token replaced with probability
    ``min(level, 1)`` by a uniformly random byte token in [2, 257].

    Args:
        batch: a collated batch; it is not modified.
        modality: the modality to corrupt.
        level: noise level, >= 0; 0 returns identical inputs.
        generator: source of randomness, on the CPU or on the inputs' device.

    Returns:
        A new batch with the corrupted inputs.
    """
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    _check_modalities(batch, [modality])
    out = _copy(batch)
    x = batch["inputs"][modality]
    present = batch["present"][modality]
    valid = _valid_mask(batch, modality)
    # Broadcast the (B,) or (B, L) mask over the remaining trailing dimensions.
    valid = valid.reshape(*valid.shape, *([1] * (x.dim() - valid.dim()))).expand_as(x)
    if x.is_floating_point():
        # Every value is real data (the usual case): no gather and no mask, which give the same values.
        everywhere = bool(valid.all()) if batch.get("lengths", {}).get(modality) is not None else bool(present.all())
        values = (x if everywhere else x[valid]).double()
        scale = level * values.std(unbiased=False).item() if values.numel() > 1 else 0.0
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        noisy = x + scale * noise
        out["inputs"][modality] = noisy if everywhere else torch.where(valid, noisy, x)
    else:
        probability = min(float(level), 1.0)
        draw = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device)
        replacement = torch.randint(
            FIRST_BYTE_TOKEN, LAST_BYTE_TOKEN + 1, x.shape, generator=generator, device=generator.device
        ).to(device=x.device, dtype=x.dtype)
        replace = valid & (x != 0) & (draw < probability)
        out["inputs"][modality] = torch.where(replace, replacement, x)
    return out


def collect(
    predict: Predict,
    loader: Iterable[Batch],
    transform: Callable[[Batch], Batch] | None = None,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Runs ``predict`` over a loader without gradients and gathers outputs and targets on the CPU.

    The caller puts the model in eval mode; ``predict`` usually wraps it, e.g. ``lambda b: model(b)["logits"]``.

    Args:
        predict: maps a batch (on ``device``) to logits (B, C) or predictions (B,).
        loader: iterable of collated batches.
        transform: applied to each batch before it is moved to ``device``.
        device: where ``predict`` runs.
        desc: what this pass is, shown with its progress (None: no progress).

    Returns:
        ``(outputs, targets)``: outputs (N, C) or (N,) and targets (N, ...) concatenated over the loader, on the CPU.
    """
    outputs, targets = [], []
    batches = progress(loader, desc=desc, unit="batch", leave=False) if desc else loader
    with torch.no_grad():
        for batch in batches:
            if transform is not None:
                batch = transform(batch)
            outputs.append(predict(move_to(batch, device)).detach().cpu())
            targets.append(batch["target"].detach().cpu())
    if not outputs:
        raise ValueError("the loader yielded no batches")
    return torch.cat(outputs), torch.cat(targets)


def missing_modality_scores(
    predict: Predict,
    loader: Iterable[Batch],
    modalities: Sequence[str],
    score: Score,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> dict[str, float]:
    """Score with each modality dropped in turn.

    Args:
        predict: as in :func:`collect`.
        loader: iterable of collated batches; iterated once per modality.
        modalities: modalities to drop, one at a time.
        score: maps ``(outputs, targets)`` to a number, e.g. ``lambda o, t: accuracy(o.argmax(-1), t)``.
        device: where ``predict`` runs.
        show_progress: show each pass's progress (``without <modality>``).

    Returns:
        ``{modality: score without that modality}``.
    """
    scores = {}
    for m in modalities:
        drop = partial(drop_modalities, modalities=[m])
        scores[m] = float(score(*collect(predict, loader, drop, device, f"without {m}" if show_progress else None)))
    return scores


def single_modality_scores(
    predict: Predict,
    loader: Iterable[Batch],
    modalities: Sequence[str],
    score: Score,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> dict[str, float]:
    """Score with only one modality kept, for each modality in turn.

    Args:
        predict: as in :func:`collect`.
        loader: iterable of collated batches; iterated once per modality.
        modalities: modalities to keep, one at a time.
        score: maps ``(outputs, targets)`` to a number.
        device: where ``predict`` runs.
        show_progress: show each pass's progress (``<modality> alone``).

    Returns:
        ``{modality: score with only that modality}``.
    """
    scores = {}
    for m in modalities:
        keep = partial(keep_only, modality=m)
        scores[m] = float(score(*collect(predict, loader, keep, device, f"{m} alone" if show_progress else None)))
    return scores


def noise_curves(
    predict: Predict,
    loader: Iterable[Batch],
    modalities: Sequence[str],
    levels: Sequence[float],
    score: Score,
    seed: int = 0,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> dict[str, list[float]]:
    """Score as a function of the noise level on each modality (the others left clean).

    Each modality gets a fresh CPU ``torch.Generator`` seeded with ``seed``, so the curves are reproducible as long
    as the loader yields the same batches in the same order (no shuffling).

    Args:
        predict: as in :func:`collect`.
        loader: iterable of collated batches; iterated once per (modality, level).
        modalities: modalities to corrupt, one at a time.
        levels: noise levels, see :func:`add_noise`.
        score: maps ``(outputs, targets)`` to a number.
        seed: seed of each modality's generator.
        device: where ``predict`` runs.
        show_progress: show each pass's progress (``noise <level> on <modality>``).

    Returns:
        ``{modality: [score at each level]}``.
    """
    curves: dict[str, list[float]] = {}
    clean: list[float] = []  # level 0 leaves inputs bit-identical: score the clean data once for every modality
    for m in modalities:
        generator = torch.Generator().manual_seed(seed)
        curves[m] = []
        for level in levels:
            if level == 0:
                if not clean:
                    desc = "no noise" if show_progress else None
                    clean.append(float(score(*collect(predict, loader, None, device, desc))))
                curves[m].append(clean[0])
                continue
            noisy = partial(add_noise, modality=m, level=level, generator=generator)
            desc = f"noise {level:g} on {m}" if show_progress else None
            curves[m].append(float(score(*collect(predict, loader, noisy, device, desc))))
    return curves


def _first_row(batch: Batch) -> Batch:
    """The batch's first sample as a batch of one (inputs, presence and lengths only)."""
    return {key: {m: t[:1] for m, t in batch[key].items()} for key in ("inputs", "present", "lengths") if key in batch}


def _only(batch: Batch, modality: str) -> Batch:
    """The part of a batch that one modality's features depend on."""
    return {
        key: {modality: batch[key][modality]}
        for key in ("inputs", "present", "lengths")
        if modality in batch.get(key, {})
    }


# A split's inputs up to this size stay in memory for the noise passes, which then do not read the loader again.
KEEP_INPUTS_BYTES = 256 * 2**20


def _input_bytes(batch: Batch) -> int:
    return sum(
        t.numel() * t.element_size() for key in ("inputs", "present", "lengths") for t in batch.get(key, {}).values()
    )


class SubsetScorer:
    """Scores one split with subsets of its modalities kept and with noise on one modality, in as few passes as the
    predictor allows.

    The split is read once: the predictor's fused outputs and targets (``outputs``, ``targets``) and, when its
    ``encode`` gives features, those features, presence masks and the features of a missing sample, per batch. Every
    subset is then scored from them through ``predict_features``, a dropped modality taking the missing sample's
    features (what its encoder sees when dropped: zero inputs); a noise level encodes the noised modality again, and
    nothing else. A predictor whose ``encode`` gives None is scored by one pass of ``predict`` per subset instead
    (:func:`single_modality_scores`, :func:`missing_modality_scores`, :func:`noise_curves`). A split whose inputs
    fit in ``KEEP_INPUTS_BYTES`` keeps them for the noise passes, which then do not read the loader again.

    Args:
        predictor: see :class:`Predictor`; the caller puts the model in eval mode.
        loader: iterable of collated batches, the same batches in the same order on every iteration (no shuffling).
        device: where the predictor runs.
        desc: what the first pass is, shown with its progress and with that of every later pass (None: no progress).
        subsets: whether subsets will be scored (else the missing sample is not encoded).
    """

    def __init__(
        self,
        predictor: Predictor,
        loader: Iterable[Batch],
        device: torch.device | str = "cpu",
        desc: str | None = None,
        subsets: bool = True,
    ) -> None:
        self.predictor, self.loader, self.device = predictor, loader, device
        self.show = desc is not None
        # Per batch: the features, a missing sample's features and the presence masks; None: the predictor can't split.
        self.batches: list[tuple[Features, Features, dict[str, Tensor]]] | None = []
        self.inputs: list[Batch] | None = []  # the batches' inputs while they fit in KEEP_INPUTS_BYTES, else None
        kept = 0
        outputs, targets = [], []
        with torch.no_grad():
            for batch in progress(loader, desc=desc, unit="batch", leave=False) if desc else loader:
                kept += _input_bytes(batch)
                if self.inputs is not None and kept <= KEEP_INPUTS_BYTES:
                    self.inputs.append({k: batch[k] for k in ("inputs", "present", "lengths") if k in batch})
                else:
                    self.inputs = None
                batch = move_to(batch, device)
                batches = self.batches
                features = predictor.encode(batch) if batches is not None else None
                if batches is None or features is None:
                    if batches:
                        raise ValueError("encode gave features for some batches only")
                    self.batches = None
                    out = predictor.predict(batch)
                else:
                    out = predictor.predict_features(features, batch["present"])
                    dropped = drop_modalities(_first_row(batch), list(batch["inputs"]))
                    blank = predictor.encode(dropped) if subsets else {}
                    batches.append((features, blank or {}, batch["present"]))
                outputs.append(out.detach().cpu())
                targets.append(batch["target"].detach().cpu())
        if not outputs:
            raise ValueError("the loader yielded no batches")
        self.outputs, self.targets = torch.cat(outputs), torch.cat(targets)

    def _outputs(self, keep: Callable[[str], bool]) -> Tensor:
        """Outputs (N, ...) on the CPU from the features, with the modalities ``keep`` rejects dropped."""
        outputs = []
        with torch.no_grad():
            for features, blank, present in self.batches or []:
                kept = {m: f if keep(m) else blank[m].expand_as(f) for m, f in features.items()}
                mask = {m: p if keep(m) else torch.zeros_like(p) for m, p in present.items()}
                outputs.append(self.predictor.predict_features(kept, mask).detach().cpu())
        return torch.cat(outputs)

    def alone(self, modalities: Sequence[str], score: Score) -> dict[str, float]:
        """``{modality: score with only that modality}``, as :func:`single_modality_scores`."""
        if self.batches is None:
            return single_modality_scores(
                self.predictor.predict, self.loader, modalities, score, self.device, self.show
            )
        return {m: float(score(self._outputs(m.__eq__), self.targets)) for m in modalities}

    def without(self, modalities: Sequence[str], score: Score) -> dict[str, float]:
        """``{modality: score without that modality}``, as :func:`missing_modality_scores`."""
        if self.batches is None:
            return missing_modality_scores(
                self.predictor.predict, self.loader, modalities, score, self.device, self.show
            )
        return {m: float(score(self._outputs(m.__ne__), self.targets)) for m in modalities}

    def noise_curves(
        self, modalities: Sequence[str], levels: Sequence[float], score: Score, seed: int = 0
    ) -> dict[str, list[float]]:
        """``{modality: [score at each level]}``, the same numbers as :func:`noise_curves` (same noise, same seeds).

        Level 0 is the fused score; each other level is one pass over the loader that encodes the noised modality.
        """
        if self.batches is None:
            return noise_curves(
                self.predictor.predict, self.loader, modalities, levels, score, seed, self.device, self.show
            )
        clean = float(score(self.outputs, self.targets))
        curves: dict[str, list[float]] = {}
        for m in modalities:
            generator = torch.Generator().manual_seed(seed)  # drawn from in the order noise_curves draws
            curves[m] = []
            for level in levels:
                if level == 0:
                    curves[m].append(clean)
                    continue
                desc = f"noise {level:g} on {m}"
                source = self.inputs if self.inputs is not None else self.loader
                batches = progress(source, desc=desc, unit="batch", leave=False) if self.show else source
                outputs = []
                with torch.no_grad():
                    for batch, (features, _, present) in zip(batches, self.batches, strict=True):
                        noisy = move_to(add_noise(_only(batch, m), m, level, generator), self.device)
                        encoded = self.predictor.encode(noisy) or {}
                        outputs.append(self.predictor.predict_features({**features, **encoded}, present).detach().cpu())
                curves[m].append(float(score(torch.cat(outputs), self.targets)))
        return curves
