"""Dataclass configs the PEFT way: fields carry ``help`` metadata, ``__post_init__`` validates,
``save_pretrained`` writes sorted JSON stamped with the hfprune version, loading rejects unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Self

from hfprune.errors import ConfigError
from hfprune.utils.io import atomic_write_json

# the key ``save_pretrained`` stamps a config file with (the hfprune version that wrote it)
VERSION_KEY = "hfprune_version"


def fingerprint(settings: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``settings`` as sorted JSON: equal settings, equal fingerprints. What a
    recipe and a pipeline stage record, so a finished stage is reused only for the settings it was computed with."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def field_help(default: Any, help: str, choices: Callable[[], Iterable[str]] | None = None, **kwargs: Any) -> Any:
    """A dataclass field with ``help`` metadata (and a factory for mutable defaults). ``choices`` returns the allowed
    values (e.g. a registry's names) when called, so help texts and CLI flags list what is registered at the time."""
    metadata = {"help": help} | ({"choices": choices} if choices is not None else {})
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def field_help_text(field: dataclasses.Field) -> str:
    """A field's ``help`` metadata, followed by its ``choices`` as registered now."""
    text = field.metadata.get("help", "")
    choices = field.metadata.get("choices")
    return f"{text} One of: {', '.join(sorted(choices()))}." if choices else text


def help_table(cls: type, base: type | None = None) -> str:
    """A markdown table (field, default, what it does) of dataclass ``cls``'s fields (those it adds to dataclass
    ``base``, if given), from their ``help`` metadata: documentation generated from where the fields are described."""
    inherited = {f.name for f in dataclasses.fields(base)} if base is not None else set()
    rows = ["| field | default | what it does |", "|---|---|---|"]
    for field in dataclasses.fields(cls):
        if field.name in inherited:
            continue
        name = field.name
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = field_help_text(field).replace("|", "\\|")  # a pipe would end the cell
        rows.append(f"| `{name}` | `{default!r}` | {text} |")
    return "\n".join(rows)


def dotted(owner: str, name: str) -> str:
    """The key error messages name: ``owner.name``, or ``name`` alone at the root of a file (``owner`` empty)."""
    return f"{owner}.{name}" if owner else str(name)


def check_fraction(owner: str, name: str, value: Any, *, allow_one: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in [0, 1) (or [0, 1] with ``allow_one``)."""
    upper = "1]" if allow_one else "1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{dotted(owner, name)}: expected a number in [0, {upper}, got {value!r}")
    if value < 0 or value > 1 or (value == 1 and not allow_one):
        raise ConfigError(f"{dotted(owner, name)}: expected a number in [0, {upper}, got {value!r}")


def check_int(owner: str, name: str, value: Any, *, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{dotted(owner, name)}: expected an integer >= {minimum}, got {value!r}")


def check_number(owner: str, name: str, value: Any, *, minimum: float, inclusive: bool = True) -> None:
    """Raise ConfigError unless ``value`` is a finite real number >= ``minimum`` (> when not ``inclusive``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{dotted(owner, name)}: expected a finite number {bound}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: list[str] | tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{dotted(owner, name)}: expected one of {sorted(choices)}, got {value!r}")


def type_name(hint: Any) -> str:
    """'an integer', 'a list of strings', 'a number or null'... for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_TYPE_NAMES_PLURAL.get(args[0], 'values')}" if args else "a list"
    if origin is dict:
        return (f"a mapping of {_TYPE_NAMES_PLURAL.get(args[0], 'keys')} to {_TYPE_NAMES_PLURAL.get(args[1], 'values')}"
                if args else "a mapping")
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_TYPE_NAMES_PLURAL = {str: "strings", int: "integers", float: "numbers"}


def matches_type(value: Any, hint: Any) -> bool:
    """Whether ``value`` (parsed YAML or JSON) has the type ``hint``; ints count as floats, bools never as numbers,
    a mapping's keys and values are both checked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin in (types.UnionType, typing.Union):
        return any(matches_type(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and (not args or all(matches_type(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict) and (not args or all(
            matches_type(k, args[0]) and matches_type(v, args[1]) for k, v in value.items()))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def coerce_type(value: Any, hint: Any) -> Any:
    """An integer given for a float field becomes a float (``2`` and ``2.0`` are the same setting)."""
    floats = hint is float or float in typing.get_args(hint)
    return float(value) if floats and isinstance(value, int) and not isinstance(value, bool) else value


def reject_unknown_keys(owner: str, payload: dict[str, Any], allowed: Iterable[str], where: str | None = None) -> None:
    """The one unknown-key error of hfprune's configs, recipes and result files: ``owner.key: unknown key (did you
    mean 'x'?); allowed keys in owner: [...]`` for the first key of ``payload`` not in ``allowed`` (``where`` names
    the container when ``owner`` is empty, the root of a recipe)."""
    allowed = sorted(allowed)
    for key in payload:
        if key in allowed:
            continue
        shown = str(key) if re.fullmatch(r"[\w-]+", str(key)) else repr(key)  # a key with ':' or a newline
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{dotted(owner, shown)}: unknown key{hint}; allowed keys in {where or owner}: {allowed}")


class ConfigMixin:
    """The base of hfprune's dataclass configs and of a recipe's sections: strict loading from parsed JSON or YAML
    (:meth:`from_dict`), errors that name the dotted key, and PEFT-style ``save_pretrained`` / ``from_pretrained``."""

    config_file_name: ClassVar[str] = "config.json"
    # the config's dotted key inside a larger file (``audits.robustness``; "" for a recipe's root), which every
    # error names (``audits.robustness.n_examples``); None for a config that stands alone, whose errors name the
    # class (``PruningConfig.head_sparsity``)
    path: ClassVar[str | None] = None
    # old key -> its new name: a file still using the old key gets a one-line error saying the new one
    renamed: ClassVar[dict[str, str]] = {}

    @classmethod
    def owner(cls) -> str:
        """What this config's keys are prefixed with in errors: its dotted key, or its class name."""
        return cls.__name__ if cls.path is None else cls.path

    @classmethod
    def key(cls, name: str) -> str:
        """The dotted key of field ``name`` (``pruning.head_sparsity``, ``PruningConfig.head_sparsity``)."""
        return dotted(cls.owner(), name)

    @classmethod
    def where(cls) -> str:
        """How errors about the config as a whole name it."""
        return cls.owner()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, payload: Any) -> Self:
        """Build from parsed JSON or YAML. A renamed or unknown key, or a value of the wrong type, is a ConfigError
        naming the dotted key; a nested config is built the same way (left empty, ``audits:``, it takes its
        defaults); ``__post_init__`` then checks the values."""
        if not isinstance(payload, dict):
            raise ConfigError(f"{cls.where()}: expected a mapping of keys to values, got {type(payload).__name__} "
                              f"{payload!r}")
        if cls.path is None:  # the version stamp save_pretrained writes is not a setting
            payload = {k: v for k, v in payload.items() if k != VERSION_KEY}
        for old in payload:
            if old in cls.renamed:
                new = cls.renamed[old]
                raise ConfigError(f"{cls.key(old)}: renamed to {cls.key(new)}; expected '{new}:' in {cls.where()}")
        reject_unknown_keys(cls.owner(), payload, [f.name for f in dataclasses.fields(cls)],  # type: ignore[arg-type]
                            cls.where())
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in payload.items():
            hint = hints[name]
            if isinstance(hint, type) and issubclass(hint, ConfigMixin):
                values[name] = hint.from_dict({} if value is None else value)
            elif not matches_type(value, hint):
                raise ConfigError(f"{cls.key(name)}: expected {type_name(hint)}, got {type(value).__name__} {value!r}")
            else:
                values[name] = coerce_type(value, hint)
        return cls(**values)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from hfprune import __version__

        path = Path(directory) / self.config_file_name
        atomic_write_json(path, {**self.to_dict(), VERSION_KEY: __version__})
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
