"""The one vocabulary of modality names used everywhere in polymodal."""

MODALITIES: tuple[str, ...] = ("image", "audio", "text", "features", "vision", "acoustic")

# Pre-extracted (T, D) feature sequences: ``features`` for any unnamed stream, ``vision`` for visual descriptors per
# frame or word (FACET, OpenFace) and ``acoustic`` for acoustic descriptors (COVAREP, librosa). ``audio`` stays the
# spectrogram of a waveform, so one name never has two tensor layouts; sentiment data need all three streams apart.
FEATURE_MODALITIES: frozenset[str] = frozenset({"features", "vision", "acoustic"})

# Modalities whose tensors are variable-length sequences; collate pads them and records their lengths.
SEQUENCE_MODALITIES: frozenset[str] = frozenset({"text"}) | FEATURE_MODALITIES


def check_modality(name: str, where: str = "modality") -> str:
    """Returns ``name`` if it is a known modality, else raises a ConfigError listing the known ones."""
    from polymodal.errors import ConfigError

    if name not in MODALITIES:
        raise ConfigError(f"{where}: unknown modality {name!r} (known: {', '.join(MODALITIES)})")
    return name
