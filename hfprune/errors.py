"""Exceptions hfprune raises on bad input: each message names the field or file and what was expected."""


class HfpruneError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(HfpruneError, ValueError):
    """A configuration or recipe value is unknown, of the wrong type or out of range."""


class DataError(HfpruneError, FileNotFoundError):
    """A dataset cannot be found or read."""


class UnsupportedModelError(HfpruneError, ValueError):
    """The model's architecture is not in the architecture table."""


class OutputDirLockedError(HfpruneError, RuntimeError):
    """Another hfprune run holds the lock of the output folder (see :mod:`hfprune.utils.lock`)."""


class NonFiniteError(HfpruneError, ArithmeticError):
    """A model's weights, loss or gradients hold NaN or inf (see :mod:`hfprune.pruning.nonfinite`)."""


class DiskFullError(HfpruneError, OSError):
    """The disk filled up while hfprune wrote a folder (see :func:`hfprune.utils.io.disk_full_reported`)."""


class HubUnreachableError(HfpruneError, ConnectionError):
    """The Hub (``HF_ENDPOINT``) cannot be reached, or ``HF_HUB_OFFLINE`` forbids trying."""
