import pytest

from polymodal.config import RunConfig, load_config
from polymodal.errors import ConfigError
from polymodal.registry import ComponentConfig, Registry, closest_key, schema_keys


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


def test_unknown_name_suggests_the_closest_registered_name():
    with pytest.raises(ConfigError, match=r"unknown widget 'boxx' \(did you mean 'box'\? registered: box\)"):
        _make().validate({"name": "boxx"}, "model.widget")


def test_unknown_key_names_key_suggestion_and_allowed_keys():
    match = r"model.widget.widht: unknown key \(did you mean model.widget.width\?\) \(allowed: width\)"
    with pytest.raises(ConfigError, match=match):
        _make().validate({"name": "box", "widht": 3}, "model.widget")


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("trainer.lr=1", "trainer.optimizer.lr"),  # the same name in another section of the schema
        ("trainer.epochz=3", "trainer.epochs"),  # a near spelling
        ("data.image.szie=8", "data.image.size"),
        ("traner.epochs=1", "trainer"),  # a section
    ],
)
def test_unknown_config_key_suggests_a_key_of_the_whole_schema(override, suggestion):
    with pytest.raises(ConfigError) as caught:
        load_config("avdigits-joint", [override])
    key = override.partition("=")[0].partition(".")[0] if suggestion == "trainer" else override.partition("=")[0]
    assert f"{key}: unknown key (did you mean {suggestion}?)" in str(caught.value)


def test_no_suggestion_for_a_key_like_no_other():
    assert closest_key("trainer.foo", schema_keys(RunConfig)) is None


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
