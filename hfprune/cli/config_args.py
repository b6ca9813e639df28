"""Command-line flags generated from a config dataclass, so each flag's type, default, choices and help live in one
place."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from hfprune.utils.config import field_help_text

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, skip: tuple[str, ...] = (),
                         only: tuple[str, ...] | None = None, overrides: str | None = None) -> None:
    """One ``--flag`` per dataclass field (or per field in ``only``): booleans become ``--name`` / ``--no-name``,
    others take a value of the field's annotated type (``int | None`` -> int), restricted to the field's
    ``choices`` metadata when it has one. ``overrides`` names the recipe section the flags override (``training``):
    their default is then None, so a flag left out keeps the recipe's value."""
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        if field.name in skip or not field.init or (only is not None and field.name not in only):
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field_help_text(field)
        choices = field.metadata.get("choices")
        default = field.default if field.default is not dataclasses.MISSING else None
        if overrides is not None:
            help_text, default = f"{help_text} Overrides {overrides}.{field.name}", None
        value_type = flag_type(hints[field.name])
        if value_type is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: {default})")
        else:
            # choices are listed once, in the help text
            parser.add_argument(flag, dest=field.name, type=value_type, default=default,
                                choices=sorted(choices()) if choices else None,
                                metavar=field.name.upper() if choices else None,
                                help=f"{help_text} (default: {default})")


def flag_type(hint: Any) -> type:
    """The type a flag's text converts to for a field annotated ``hint``: the one non-None member of an optional
    (``int | None`` -> int), str for anything argparse cannot convert by calling the type."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = members[0] if len(members) == 1 else str
    return hint if hint in (bool, int, float, str) else str


def config_from_args(config_cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build ``config_cls`` from the parsed flags (its ``__post_init__`` validates)."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return config_cls(**{**values, **overrides})
