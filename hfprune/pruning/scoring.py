"""Unit scorers behind one registry: higher score = more worth keeping.

A scorer is a plain object. ``accumulate`` is called once per optimizer step with the (already accumulated,
unscaled) gradients present and adds to a per-layer state tensor that the pruner owns, saves and resumes;
``score`` turns that state into per-unit scores when masks are chosen. Both work per ``UnitGroup``. ``select``
turns the scores of all layers into keep-masks (top-k for the scheduled sparsity, unless the scorer says otherwise).

Which gradient a scorer sees under the mask follows its paper (``straight_through``):
- ``movement_ste`` and ``soft_movement`` (Sanh et al. 2020; Lagunas et al. 2021 for blocks) learn their scores
  through a straight-through estimator: the pruner masks units with ``MaskHooks(straight_through=True)``, so masked
  units' weights get dL/dW' and their scores keep moving.
- ``movement`` is the pre-estimator version (masked units get no gradient, their scores freeze), kept as it is
  because every published hfprune number so far was measured with it.
- ``head_importance`` (Michel et al. 2019) is |dL/d gate| at the current mask. For a kept head that is what it
  reads; a pruned head stays pruned in the paper, so its gate gradient is never used and no estimator is needed.
- ``snip_momentum`` follows Intel Neural Compressor, which zeroes pruned weights in place: |W * dL/dW| of a pruned
  unit is 0 there, so its score decays with the momentum. No estimator, as in INC.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from hfprune.pruning.masks import round_masks, select_masks
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
    straight_through: ClassVar[bool] = False
    """True when masked units must keep receiving gradients (the pruner then masks with the estimator)."""
    settings: ClassVar[tuple[str, ...]] = ()
    """PruningConfig fields passed to the constructor besides ``seed``."""
    target_is_a_cap: ClassVar[bool] = False
    """True when the scorer itself decides how many units go and the sparsity targets only bound it (the pruner
    then says when a run ends below them, naming ``settings``)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        """Add this step's contribution to ``state`` (shape: group.num_units) in place."""

    def accumulate_groups(self, groups: list[UnitGroup], states: list[torch.Tensor], progress: float = 1.0) -> None:
        """This step's contribution for every layer's group of one kind; each group on its own unless a scorer
        needs to see them together (or where the step is on the schedule, ``progress`` as in ``select``)."""
        for group, state in zip(groups, states, strict=True):
            self.accumulate(group, state)

    def score(self, group: UnitGroup, state: torch.Tensor) -> torch.Tensor:
        return state.clone()

    def select(self, scores: list[torch.Tensor], sparsity: float, allocation: str, min_per_layer: int,
               round_to: int, progress: float) -> list[torch.Tensor]:
        """Keep-masks for the scheduled ``sparsity``; ``progress`` in [0, 1] is the cubic schedule's fraction of
        the way to the final sparsity."""
        return select_masks(scores, sparsity, allocation, min_per_layer, round_to)


@register_scorer("movement")
class MovementScorer(UnitScorer):
    """First-order movement (Sanh et al. 2020; block form of Lagunas et al. 2021): S = -sum_t W_t * dL/dW_t,
    summed over every weight of the unit. High when fine-tuning pushes the unit's weights away from zero. No
    gradient passes the mask, so a masked unit's score freezes (``movement_ste`` is the estimator version)."""

    needs_gradients = True

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        contribution = _sum_weight_times_grad(group.views())
        if contribution is not None:
            state -= contribution.to(state.device)


@register_scorer("movement_ste")
class StraightThroughMovementScorer(MovementScorer):
    """Movement as published (Sanh et al. 2020, in the block form of Lagunas et al. 2021): S = -sum_t W_t * dL/dW'_t
    over every weight of the unit, W' the masked weights, with the gradient passed through the mask. For a kept
    unit that is ``movement``; a masked unit keeps scoring (its consumer columns' part is the gradient at its gate)
    and keeps training, so it can earn its way back with up-to-date weights and score."""

    straight_through = True


@register_scorer("soft_movement")
class SoftMovementScorer(StraightThroughMovementScorer):
    """Soft movement (Sanh et al. 2020) at unit level: learned scores S, units kept while sigmoid(S) > tau.

    S descends the loss plus lambda * sum of sigmoid(S) (the L1 penalty on the gates) by one SGD step per
    optimizer step: + the straight-through movement -sum W * dL/dW', divided by its root mean square over all
    units of the kind (all layers' heads, or all layers' neurons) at that step, - lambda * sigmoid'(S), lambda
    ramping up to ``regularization`` along with the threshold (as in Sanh et al.'s code: no penalty in warm-up).
    Raw movement per step is orders of magnitude below 1 and differs between heads and neurons; normalised, S
    moves by about one per step, so the threshold on sigmoid(S) and the penalty mean the same on any model
    (Sanh et al. learn S with Adam, scale-free too). The regulariser depends on S alone and no model weight
    depends on it, so its gradient is applied here rather than added to the training loss: that works the same
    under any Trainer, distillation, gradient accumulation and DDP.

    The threshold tau ramps from 0 to ``threshold`` with the cubic schedule (Sanh et al. schedule the threshold
    too); ``head_sparsity`` / ``ffn_sparsity`` ramp alongside and cap how much the threshold may remove (lowest
    scores first), so the sparsity ends between 0 and the target: the penalty decides how close.
    """

    settings = ("regularization", "threshold")
    target_is_a_cap = True

    def __init__(self, seed: int = 0, regularization: float = 1.0, threshold: float = 0.5) -> None:
        super().__init__(seed)
        self.regularization = regularization
        self.threshold = threshold

    def accumulate(self, group: UnitGroup, state: torch.Tensor) -> None:
        self.accumulate_groups([group], [state])

    def accumulate_groups(self, groups: list[UnitGroup], states: list[torch.Tensor], progress: float = 1.0) -> None:
        products = [_sum_weight_times_grad(group.views()) for group in groups]
        present = [p for p in products if p is not None]
        scale = torch.cat(present).square().mean().sqrt() if present else torch.tensor(0.0)
        penalty = self.regularization * progress
        for product, state in zip(products, states, strict=True):
            gate = torch.sigmoid(state)
            if product is not None and scale > 0:
                state -= (product / scale).to(state.device)
            state -= penalty * gate * (1 - gate)

    def select(self, scores: list[torch.Tensor], sparsity: float, allocation: str, min_per_layer: int,
               round_to: int, progress: float) -> list[torch.Tensor]:
        allowed = select_masks(scores, sparsity, allocation, min_per_layer)  # what the schedule lets go at most
        tau = self.threshold * progress
        cut = math.log(tau / (1 - tau)) if tau > 0 else float("-inf")  # sigmoid(S) > tau  <=>  S > logit(tau)
        masks = [torch.maximum(kept, (score > cut).float()) for score, kept in zip(scores, allowed, strict=True)]
        return round_masks(masks, scores, round_to, min_per_layer)


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


def build_scorer(name: str, seed: int = 0, **settings: float) -> UnitScorer:
    """The scorer ``name``; ``settings`` may hold any PruningConfig field, the scorer takes those it names."""
    if name not in SCORERS:
        from hfprune.errors import ConfigError

        raise ConfigError(f"scoring: expected one of {sorted(SCORERS)}, got {name!r}")
    scorer = SCORERS[name]
    return scorer(seed=seed, **{key: settings[key] for key in scorer.settings if key in settings})
