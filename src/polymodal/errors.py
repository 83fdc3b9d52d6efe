"""Errors a user can cause (bad input, bad config). The CLI prints them as one line and exits with status 2."""


class PolymodalError(Exception):
    """Base class of user-facing errors; the message names the file or key and the problem."""


class ConfigError(PolymodalError):
    """A recipe, override or run directory that cannot be used."""


class DataError(PolymodalError):
    """A data file that is missing, unreadable or malformed."""


class TrainingError(PolymodalError):
    """Training that cannot go on (e.g. a non-finite loss)."""
