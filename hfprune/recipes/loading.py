"""Reading a recipe file: strict YAML parsing (every failure names the file), dotted-key overrides from the command
line, then validation into a :class:`~hfprune.recipes.schema.Recipe` and its path checks. Nothing is written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hfprune.errors import ConfigError, DataError
from hfprune.recipes.schema import Recipe


class _Loader:
    """``yaml.SafeLoader`` that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""

    @staticmethod
    def build() -> type:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
            list("-+0123456789"),
        )
        return Loader


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a recipe file into a mapping; every failure names the file and what was expected."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe file {path}: no such file")
    if path.is_dir():
        raise ConfigError(f"recipe file {path}: is a directory; expected a YAML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"recipe file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe file {path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8") from None
    try:
        payload = yaml.load(text, Loader=_Loader.build())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())  # PyYAML's messages span lines
        raise ConfigError(f"recipe file {path}: not valid YAML{at} ({detail})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"recipe file {path}: expected a mapping of sections (model, data, pruning, ...), got "
                          f"{type(payload).__name__}")
    return payload


def load_recipe(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, validate and path-check a recipe; ``overrides`` maps dotted keys to values (``output.dir``).

    Errors are prefixed with the file name. Nothing is written.
    """
    payload = read_recipe_file(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(payload, dotted, value)
    try:
        recipe = Recipe.from_dict(payload)
        recipe.check_paths()
    except (ConfigError, DataError) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return recipe


# an override value that deletes the key from the file's payload: a flag that replaces it (--seeds for seed)
REMOVED = object()


def _set_dotted(payload: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = payload
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{part}: expected a mapping, got {type(child).__name__}")
        node = child
    if value is REMOVED:
        node.pop(last, None)
    else:
        node[last] = value
