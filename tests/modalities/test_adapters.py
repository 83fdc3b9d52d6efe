"""The adapter registry: one table of kind -> (settings, adapter), read by CSV manifests, ``embed`` and packing."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch

from polymodal.data.config import DataConfig
from polymodal.data.vocab import MODALITIES
from polymodal.errors import ConfigError
from polymodal.modalities import ADAPTERS, TextAdapter, TextConfig
from polymodal.modalities.adapters import adapter, file_kinds, reads_files, settings_class
from polymodal.registry import ComponentConfig


def test_each_registered_kind_is_a_modality_with_its_settings_section_in_data():
    assert ADAPTERS.names() == ["audio", "features", "image", "text"]
    for kind in ADAPTERS.names():
        assert kind in MODALITIES
        assert DataConfig.model_fields[kind].annotation is settings_class(kind), kind


@pytest.mark.parametrize(
    ("suffix", "kind"), [(".wav", "audio"), (".jpeg", "image"), (".npy", "features"), ("", "text")]
)
def test_a_file_is_read_by_the_adapter_of_its_suffix(suffix: str, kind: str):
    suffixes, other = file_kinds()
    assert suffixes.get(suffix, other) == kind
    assert reads_files(kind) is (kind != "text")


def test_an_adapter_reads_one_item_as_its_own_method_does():
    config = TextConfig(max_length=4)
    assert torch.equal(adapter("text", config).read("hello"), TextAdapter(config).from_text("hello"))
    with pytest.raises(ConfigError, match="unknown modality adapter 'video'"):
        adapter("video", config)


def test_a_registered_kind_is_recognised_by_its_file_suffix(monkeypatch):
    monkeypatch.setattr(ADAPTERS, "_entries", dict(ADAPTERS._entries))

    class PointsConfig(ComponentConfig):
        points: int = 128

    @ADAPTERS.register("points", PointsConfig)
    class PointsAdapter:
        extensions: ClassVar[tuple[str, ...]] = (".ply",)

        def __init__(self, cfg: PointsConfig) -> None:
            self.cfg = cfg

        def read(self, item: str | Path) -> torch.Tensor:
            return torch.zeros(self.cfg.points, 3)

    assert file_kinds()[0][".ply"] == "points" and reads_files("points")
    assert adapter("points", PointsConfig(points=4)).read("scan.ply").shape == (4, 3)
