"""Library logging: hfprune logs, the CLI prints."""

import logging


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``hfprune`` namespace."""
    return logging.getLogger(name if name.startswith("hfprune") else f"hfprune.{name}")
