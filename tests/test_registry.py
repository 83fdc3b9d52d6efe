import pytest

from polymodal.errors import ConfigError
from polymodal.registry import ComponentConfig, Registry


class _Config(ComponentConfig):
    width: int = 4


def _make() -> Registry:
    registry = Registry("widget")

    @registry.register("box", _Config)
    def box(width: int) -> int:
        return width * 2

    return registry


def test_validate_fills_defaults_and_build_uses_them():
    registry = _make()
    spec = registry.validate({"name": "box"}, "model.widget")
    assert spec == {"name": "box", "width": 4}
    assert registry.build({"name": "box", "width": 3}) == 6


def test_unknown_name_lists_registered_names():
    with pytest.raises(ConfigError, match=r"model.widget.name: unknown widget 'bag' \(registered: box\)"):
        _make().validate({"name": "bag"}, "model.widget")


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError, match=r"model.widget.widht: unknown key \(allowed: width\)"):
        _make().validate({"name": "box", "widht": 3}, "model.widget")


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"model.widget.width: Input should be a valid integer"):
        _make().validate({"name": "box", "width": "wide"}, "model.widget")


def test_missing_name_is_an_error():
    with pytest.raises(ConfigError, match="expected a mapping with a 'name' key"):
        _make().validate({"width": 3}, "model.widget")


def test_double_registration_fails():
    registry = _make()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("box", _Config)(lambda width: width)
