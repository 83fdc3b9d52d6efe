"""The one vocabulary of modality names used everywhere in polymodal.

An input is named by its modality kind (``image``), or, when a dataset has several inputs of one kind (two image
views, two texts), by ``kind:name`` (``image:front``, ``image:side``): each is a separate input with its own
encoder, and everything that depends on the kind (adapter, collate, augmentation) reads it with
:func:`modality_kind`.
"""

MODALITIES: tuple[str, ...] = ("image", "audio", "text", "features", "vision", "acoustic")

# Pre-extracted (T, D) feature sequences: ``features`` for any unnamed stream, ``vision`` for visual descriptors per
# frame or word (FACET, OpenFace) and ``acoustic`` for acoustic descriptors (COVAREP, librosa). ``audio`` stays the
# spectrogram of a waveform, so one name never has two tensor layouts; sentiment data need all three streams apart.
FEATURE_MODALITIES: frozenset[str] = frozenset({"features", "vision", "acoustic"})

# Modalities whose tensors are variable-length sequences; collate pads them and records their lengths.
SEQUENCE_MODALITIES: frozenset[str] = frozenset({"text"}) | FEATURE_MODALITIES


def modality_kind(name: str) -> str:
    """The modality kind of an input name: ``image`` for ``image`` and for ``image:front``."""
    return name.split(":", 1)[0]


def is_sequence(name: str) -> bool:
    """Whether an input's tensors are variable-length sequences (text, feature streams)."""
    return modality_kind(name) in SEQUENCE_MODALITIES


def is_features(name: str) -> bool:
    """Whether an input is a pre-extracted feature stream (features, vision, acoustic)."""
    return modality_kind(name) in FEATURE_MODALITIES


def adapter_kind(name: str) -> str:
    """The adapter (``data.image``, ``data.audio``, ``data.text`` or ``data.features``) that converts an input."""
    return "features" if is_features(name) else modality_kind(name)


def check_modality(name: str, where: str = "modality") -> str:
    """Returns ``name`` if it is a known modality or ``kind:name`` input, else raises a ConfigError."""
    from polymodal.errors import ConfigError

    kind, sep, suffix = name.partition(":")
    if kind not in MODALITIES or (sep and not suffix.strip()):
        raise ConfigError(
            f"{where}: unknown modality {name!r} (known: {', '.join(MODALITIES)}, or kind:name such as image:front)"
        )
    return name
