"""The base of every recipe section and the helpers sections share (split from :mod:`hfprune.recipes.schema` so that
section groups in their own modules, such as :mod:`hfprune.recipes.audit_sections`, import no recipe)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from hfprune.utils.config import ConfigMixin, check_number


class Section(ConfigMixin):
    """Base of every recipe section: a :class:`~hfprune.utils.config.ConfigMixin` whose ``path`` is its dotted key
    (``audits.robustness``), which its loading and validation errors name."""

    path: ClassVar[str] = ""


def section(factory: Any, help: str) -> Any:
    """A nested section field: a fresh default per recipe, with ``help`` metadata."""
    return dataclasses.field(default_factory=factory, metadata={"help": help})


def check_positive(section: Section, *names: str) -> None:
    """Each named field of ``section`` is a number > 0 (errors name the dotted key)."""
    for name in names:
        check_number(section.path, name, getattr(section, name), minimum=0.0, inclusive=False)
