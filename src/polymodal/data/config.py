"""The recipe's ``data`` section: which data, how it is split and batched, and how each modality is converted.

Free of torch, so a recipe is checked before anything heavy is imported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from polymodal.data.augment_settings import AugmentConfig
from polymodal.data.vocab import check_modality
from polymodal.modalities.settings import AudioConfig, FeaturesConfig, ImageConfig, TextConfig
from polymodal.registry import ComponentConfig


class DataConfig(ComponentConfig):
    """Which data, how it is split and batched, and how each modality is converted."""

    # A registered dataset (``data.sources.DATASETS``), checked by validate_config and data_config.
    name: str = "avdigits"
    root: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    target: str = "label"
    task: Literal["classification", "regression"] = "classification"
    modalities: list[str] | dict[str, str] | None = None
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    # Sentiment feature files (mmsa, mult, mosi): consent to read a pickle once, and video-disjoint folds (mosi).
    trust_pickle: bool = False
    folds: int = Field(5, ge=3)
    fold: int = Field(0, ge=0)
    # multitask-digits: the tasks to build (default all; one task is the 'alone' setting of MultiModel).
    tasks: list[str] | None = None
    # multitask-digits: training examples of the low-data task (parse; None keeps its default 300, at most 700: the
    # first N of its fixed training numbers, so a smaller set is part of every larger one).
    low_data_examples: int | None = Field(None, ge=1, le=700)
    # [k, n]: keep only the k-th of n disjoint parts of the training split (one fixed permutation, whatever the
    # seed), e.g. two contrastive spaces trained on disjoint halves before bridging them.
    train_part: tuple[int, int] | None = None
    # Digit data without text (avmnist): add a text modality, a generated number phrase naming each sample's digit
    # in one of eight languages (as digit-captions).
    captions: bool = False
    image: ImageConfig = ImageConfig()
    audio: AudioConfig = AudioConfig()
    text: TextConfig = TextConfig()
    features: FeaturesConfig = FeaturesConfig()
    # Training batches only: random transforms per modality kind, e.g. {image: {}, audio: {shift: 0.2}}.
    augment: AugmentConfig = AugmentConfig()

    @field_validator("train_part")
    @classmethod
    def _valid_part(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not (value[1] >= 2 and 0 <= value[0] < value[1]):
            raise ValueError(f"expected [k, n] with n >= 2 and 0 <= k < n, got {list(value)}")
        return value

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, value: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        names = value.values() if isinstance(value, dict) else (value or [])
        for name in names:
            check_modality(name, "data.modalities")
        return value
