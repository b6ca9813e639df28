"""Unit scorers behind one registry: higher score = more worth keeping.

A scorer is a plain object. ``accumulate`` is called once per optimizer step with the (already accumulated,
unscaled) gradients present and adds to a per-layer state tensor that the pruner owns, saves and resumes;
``score`` turns that state into per-unit scores when masks are chosen. Both work per ``UnitGroup``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from hfprune.pruning.units import UnitGroup
from hfprune.utils.registry import registering

SCORERS: dict[str, type[UnitScorer]] = {}


def register_scorer(name: str) -> Callable[[type[UnitScorer]], type[UnitScorer]]:
    """Class decorator adding a scorer to ``SCORERS``; a duplicate name is an error."""
    return registering(SCORERS, "scorer", name)


def _sum_weight_times_grad(views: list[tuple[torch.Tensor, torch.Tensor | None]],
                           absolute: bool = False) -> torch.Tensor | None:
    """Per unit, the sum over its weights of W * dL/dW, or of |W * dL/dW| with ``absolute`` (in float32, whatever
    the training precision)."""
    total = None
    for values, grad in views:
        if grad is None:
            continue
        products = values.float() * grad.float()
        part = (products.abs() if absolute else products).sum(dim=1)
        total = part if total is None else total + part
    return total


class UnitScorer:
    """Base scorer: no accumulation, scores are the accumulated state."""

    name: ClassVar[str]
    needs_gradients: ClassVar[bool] = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        """Add this step's contribution to ``state`` (shape: group.num_units) in place."""

    def score(self, group: UnitGroup, state: torch.Tensor) -> torch.Tensor:
        return state.clone()


@register_scorer("movement")
class MovementScorer(UnitScorer):
    """First-order movement (Sanh et al. 2020; block form of Lagunas et al. 2021): S = -sum_t W_t * dL/dW_t,
    summed over every weight of the unit. High when fine-tuning pushes the unit's weights away from zero."""

    needs_gradients = True

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        contribution = _sum_weight_times_grad(group.views())
        if contribution is not None:
            state -= contribution.to(state.device)


@register_scorer("head_importance")
class HeadImportanceScorer(UnitScorer):
    """Michel et al. (2019): |dL/dxi| of a gate xi on the unit's output, accumulated over batches and normalised
    per layer. With the gate at 1, dL/dxi equals the sum over the consumer's unit columns of W * dL/dW, so no
    extra forward hooks are needed."""

    needs_gradients = True

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        contribution = _sum_weight_times_grad(group.views(producers=False))
        if contribution is not None:
            state += contribution.abs().to(state.device)

    def score(self, group: UnitGroup, state: torch.Tensor) -> torch.Tensor:
        norm = state.norm(p=2)
        return state / norm if norm > 0 else state.clone()


@register_scorer("snip_momentum")
class SnipMomentumScorer(UnitScorer):
    """SNIP sensitivity (Lee et al. 2019) with momentum, the unit form of Intel Neural Compressor's snip_momentum:
    S_t = beta * S_{t-1} + sum over the unit's weights of |W * dL/dW|. Unlike movement, the score forgets: it
    ranks units by how much the loss depends on them lately, so once the masks move the ranking follows the
    model being trained rather than its first steps. Per-weight absolute values (not the unit's signed sum)
    keep units whose weights matter in opposite directions."""

    needs_gradients = True
    momentum: ClassVar[float] = 0.9

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        contribution = _sum_weight_times_grad(group.views(), absolute=True)
        if contribution is not None:
            state.mul_(self.momentum).add_(contribution.to(state.device))


@register_scorer("magnitude")
class MagnitudeScorer(UnitScorer):
    """L1 norm of the unit's weights (producer rows, biases and consumer columns), read when masks are chosen."""

    def score(self, group: UnitGroup, state: torch.Tensor) -> torch.Tensor:
        views = group.views()
        return sum(values.float().abs().sum(dim=1) for values, _ in views).to(state.device)


@register_scorer("random")
class RandomScorer(UnitScorer):
    """Uniform random scores, a function of (seed, layer, kind) only: every process and every resume agrees."""

    def score(self, group: UnitGroup, state: torch.Tensor) -> torch.Tensor:
        kind_offset = 0 if group.kind.value == "heads" else 1
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + group.layer * 2 + kind_offset)
        return torch.rand(group.num_units, generator=generator).to(state.device)


def build_scorer(name: str, seed: int = 0) -> UnitScorer:
    if name not in SCORERS:
        from hfprune.errors import ConfigError

        raise ConfigError(f"scoring: expected one of {sorted(SCORERS)}, got {name!r}")
    return SCORERS[name](seed=seed)
