"""Dataclass configs the PEFT way: fields carry ``help`` metadata, ``__post_init__`` validates,
``save_pretrained`` writes sorted JSON stamped with the hfprune version, loading rejects unknown keys."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Self

from hfprune.errors import ConfigError
from hfprune.utils.io import atomic_write_json


def field_help(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with ``help`` metadata (and a factory for mutable defaults)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def check_fraction(owner: str, name: str, value: Any, *, allow_one: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in [0, 1) (or [0, 1] with ``allow_one``)."""
    upper = "1]" if allow_one else "1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{owner}.{name}: expected a number in [0, {upper}, got {value!r}")
    if value < 0 or value > 1 or (value == 1 and not allow_one):
        raise ConfigError(f"{owner}.{name}: expected a number in [0, {upper}, got {value!r}")


def check_int(owner: str, name: str, value: Any, *, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}.{name}: expected an integer >= {minimum}, got {value!r}")


def check_number(owner: str, name: str, value: Any, *, minimum: float, inclusive: bool = True) -> None:
    """Raise ConfigError unless ``value`` is a finite real number >= ``minimum`` (> when not ``inclusive``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{owner}.{name}: expected a finite number {bound}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: list[str] | tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{owner}.{name}: expected one of {sorted(choices)}, got {value!r}")


class ConfigMixin:
    """Serialisation shared by hfprune's dataclass configs."""

    config_file_name: str = "config.json"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        """Build from a dict; unknown keys are an error that lists the allowed ones."""
        if not isinstance(payload, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(payload).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        payload = {k: v for k, v in payload.items() if k != "hfprune_version"}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**payload)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from hfprune import __version__

        path = Path(directory) / self.config_file_name
        atomic_write_json(path, {**self.to_dict(), "hfprune_version": __version__})
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Self:
        path = Path(directory) / cls.config_file_name
        if not path.is_file():
            raise ConfigError(f"{cls.__name__}: no {cls.config_file_name} in {directory}")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not valid UTF-8 JSON ({exc})") from None
        return cls.from_dict(payload)
