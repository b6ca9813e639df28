"""Command-line flags generated from a config dataclass, so each flag's type, default and help live in one place."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field: booleans become ``--name`` / ``--no-name``, others take a value of
    the default's type (strings when the default is None)."""
    for field in dataclasses.fields(config_cls):
        if field.name in skip or not field.init:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: {default})")
        else:
            value_type = type(default) if default is not None else str
            parser.add_argument(flag, dest=field.name, type=value_type, default=default,
                                help=f"{help_text} (default: {default})")


def config_from_args(config_cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build ``config_cls`` from the parsed flags (its ``__post_init__`` validates)."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return config_cls(**{**values, **overrides})
