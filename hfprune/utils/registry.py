"""Name -> value registries (scorers, weight methods, attack recipes, privacy probes, datasets, pruning families):
one way to add to them, and one error for a name taken twice."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from hfprune.errors import ConfigError

T = TypeVar("T")
C = TypeVar("C", bound=type)


def _owner(value: Any) -> str:
    """How the error names what already holds the name: a class or function by its name, a spec by its class."""
    if isinstance(value, str):
        return value
    return getattr(value, "__name__", None) or getattr(value, "class_name", None) or repr(value)


def check_free(registry: MutableMapping[str, Any], name: str, what: str) -> None:
    """ConfigError (a ValueError) naming ``what`` and the holder when ``name`` is already in ``registry``."""
    if name in registry:
        raise ConfigError(f"{what} {name!r}: already registered by {_owner(registry[name])}")


def add(registry: MutableMapping[str, T], name: str, value: T, what: str) -> T:
    """Put ``value`` under ``name``, refusing a name already taken (see :func:`check_free`); returns ``value``."""
    check_free(registry, name, what)
    registry[name] = value
    return value


def registering(registry: dict[str, C], what: str, name: str) -> Callable[[C], C]:
    """Class decorator adding the class to ``registry`` under ``name`` (also set as ``cls.name``)."""

    def decorate(cls: C) -> C:
        add(registry, name, cls, what)
        cls.name = name
        return cls

    return decorate
