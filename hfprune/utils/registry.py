"""Name -> class registries filled by a class decorator, shared by scorers, weight methods and the like."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)


def registering(registry: dict[str, T], what: str, name: str) -> Callable[[T], T]:
    """Class decorator adding the class to ``registry`` under ``name`` (also set as ``cls.name``); a duplicate
    name is an error naming ``what`` kind of thing it is."""

    def decorate(cls: T) -> T:
        if name in registry:
            raise ValueError(f"{what} {name!r} is already registered")
        registry[name] = cls
        cls.name = name
        return cls

    return decorate
