"""The one vocabulary of modality names used everywhere in polymodal."""

MODALITIES: tuple[str, ...] = ("image", "audio", "text", "features")

# Modalities whose tensors are variable-length sequences; collate pads them and records their lengths.
SEQUENCE_MODALITIES: frozenset[str] = frozenset({"text", "features"})


def check_modality(name: str, where: str = "modality") -> str:
    """Returns ``name`` if it is a known modality, else raises a ConfigError listing the known ones."""
    from polymodal.errors import ConfigError

    if name not in MODALITIES:
        raise ConfigError(f"{where}: unknown modality {name!r} (known: {', '.join(MODALITIES)})")
    return name
