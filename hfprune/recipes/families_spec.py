"""What a recipe may name as a pruning family (``sweep.families``, ``hfprune sweep --families``): the family rules,
their registry and the name checks. Kept apart from :mod:`hfprune.pipeline.families` (which builds and compares the
levels) so that validating a recipe never imports the pipeline.

A family maps a parameter sparsity p (the fraction of the prunable encoder-layer weights removed) to the pruning
fields that remove it; see :mod:`hfprune.pipeline.families` for the three families' definitions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.utils.registry import add

if TYPE_CHECKING:
    from hfprune.pruning.config import PruningConfig

FamilyRule = Callable[["PruningConfig", float], dict[str, Any]]
FAMILIES: dict[str, FamilyRule] = {}


def register_family(name: str) -> Callable[[FamilyRule], FamilyRule]:
    """Decorator adding a family rule (base pruning config, p -> pruning fields to set) to ``FAMILIES``."""

    def decorate(rule: FamilyRule) -> FamilyRule:
        return add(FAMILIES, name, rule, "family")

    return decorate


def _pattern_sparsity(base: PruningConfig) -> float | None:
    from hfprune.pruning.weight.methods import WEIGHT_METHODS

    return WEIGHT_METHODS[base.weight_method].pattern_sparsity()


@register_family("structured")
def _structured(base: PruningConfig, p: float) -> dict[str, Any]:
    # no weights are pruned, so the weight method is irrelevant: the default one keeps the level valid under a 2:4
    # recipe (which fixes weight_sparsity = 0.5) and its fingerprint unchanged when the recipe's weight method changes
    default_method = next(f.default for f in dataclasses.fields(base) if f.name == "weight_method")
    return {"head_sparsity": p, "ffn_sparsity": p, "weight_sparsity": 0.0, "weight_method": default_method}


@register_family("weight")
def _weight(base: PruningConfig, p: float) -> dict[str, float]:
    return {"head_sparsity": 0.0, "ffn_sparsity": 0.0, "weight_sparsity": p}


@register_family("combined")
def _combined(base: PruningConfig, p: float) -> dict[str, float]:
    w = _pattern_sparsity(base)
    if w is None:
        s = w = 1 - math.sqrt(1 - p)
    else:
        s = 1 - (1 - p) / (1 - w)
        if s < 0:
            raise ConfigError(f"sweep.param_sparsities: weight_method {base.weight_method!r} alone removes {w:g} of "
                              f"the weights; expected parameter sparsities >= {w:g} for the combined family, got {p}")
    return {"head_sparsity": s, "ffn_sparsity": s, "weight_sparsity": w}


def check_families(key: str, names: list[str]) -> None:
    """A list of distinct registered family names."""
    for i, name in enumerate(names):
        if name not in FAMILIES:
            raise ConfigError(f"{key}[{i}]: expected one of {sorted(FAMILIES)}, got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: expected distinct families, got {names}")


def parse_list(key: str, text: str) -> list[str]:
    """``"a, b"`` -> ["a", "b"] (a CLI comma list)."""
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise ConfigError(f"{key}: expected a comma-separated list without empty items, got {text!r}")
    return items
