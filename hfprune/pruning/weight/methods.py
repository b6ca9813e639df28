"""Weight pruning methods behind one registry (``weight_method``): how each weight is scored, and how keep-masks
are chosen from the scores.

A method is a plain object. ``accumulate`` is called once per optimizer step with the straight-through gradient
dL/dW' of the masked weight W' = W * M present in ``weight.grad`` and adds to a score tensor that the pruner owns,
saves and resumes; ``score`` turns that state into scores when masks are chosen; ``select`` picks keep-masks for the
scheduled sparsity; ``refresh`` may move masks between two scheduled updates. Scores and masks handed to
``select`` / ``refresh`` are (out, in) tensors restricted to the weights left by head / FFN pruning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from hfprune.errors import ConfigError
from hfprune.pruning.weight.selection import n_of_m_masks, top_k_masks
from hfprune.utils.registry import registering

WEIGHT_METHODS: dict[str, type[WeightMethod]] = {}


def register_weight_method(name: str) -> Callable[[type[WeightMethod]], type[WeightMethod]]:
    """Class decorator adding a method to ``WEIGHT_METHODS``; a duplicate name is an error."""
    return registering(WEIGHT_METHODS, "weight method", name)


class WeightMethod:
    """Base method: scores are the accumulated state, masks keep the top-scoring weights."""

    name: ClassVar[str]
    needs_gradients: ClassVar[bool] = False
    """True when scores accumulate from gradients (and so must be saved and resumed)."""
    pattern: ClassVar[tuple[int, int] | None] = None
    """(n, m) for an N:M semi-structured pattern, which fixes the final sparsity to 1 - n/m."""
    refreshes: ClassVar[bool] = False
    """True when masks also move between scheduled updates (``refresh``)."""

    @classmethod
    def pattern_sparsity(cls) -> float | None:
        return None if cls.pattern is None else 1 - cls.pattern[0] / cls.pattern[1]

    def accumulate(self, weight: torch.Tensor, grad: torch.Tensor, state: torch.Tensor) -> None:
        """Add this optimizer step's contribution to ``state`` (float32, shaped like the weight) in place."""

    def score(self, weight: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return state.clone()

    def select(self, scores: list[torch.Tensor], sparsity: float, allocation: str) -> list[torch.Tensor]:
        return top_k_masks(scores, sparsity, allocation)

    def refresh(self, scores: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """Masks to use from this step on, between two scheduled updates; None keeps the current ones."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


@register_weight_method("magnitude")
class MagnitudeMethod(WeightMethod):
    """Gradual magnitude pruning (Zhu & Gupta 2017): keep the largest |W|, read when masks are chosen, with the
    sparsity ramped by the cubic schedule. Needs no gradients and no saved scores."""

    def score(self, weight: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return weight.detach().float().abs()


@register_weight_method("movement")
class MovementMethod(WeightMethod):
    """Hard movement pruning (Sanh et al. 2020, top-k): S = -sum_t W_t * dL/dW'_t, the straight-through gradient of
    a score through the mask, accumulated every step (plain SGD on S with unit rate, which ranks like any rate).
    High when fine-tuning moves a weight away from zero; pruned weights keep scoring and can come back."""

    needs_gradients = True

    def accumulate(self, weight: torch.Tensor, grad: torch.Tensor, state: torch.Tensor) -> None:
        state -= (weight.detach().float() * grad.detach().float()).to(state.device)


@register_weight_method("soft_movement")
class SoftMovementMethod(MovementMethod):
    """Soft movement pruning (Sanh et al. 2020): the same learned scores, masked by a threshold, M = 1[S > tau].

    At each scheduled update tau is set so that the mask meets the scheduled sparsity exactly (per matrix, or one
    tau for all with global allocation); between updates the mask follows the scores every step -- weights whose
    score crosses tau enter or leave -- so the sparsity floats around the schedule. Sanh et al. instead fix tau and
    steer sparsity with an L1 penalty on sigmoid(S); setting tau from the schedule keeps one schedule for all
    methods and makes the final sparsity exact.
    """

    refreshes = True

    def __init__(self) -> None:
        self.thresholds: list[float] = []

    def select(self, scores: list[torch.Tensor], sparsity: float, allocation: str) -> list[torch.Tensor]:
        masks = top_k_masks(scores, sparsity, allocation)
        pruned_max = [float(s[~m].max()) if bool((~m).any()) else float("-inf")
                      for s, m in zip(scores, masks, strict=True)]
        if allocation == "global":
            pruned_max = [max(pruned_max, default=float("-inf"))] * len(scores)
        self.thresholds = pruned_max
        return masks

    def refresh(self, scores: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor] | None:
        if not self.thresholds:
            return None
        return [torch.where(s == tau, m, s > tau) for s, m, tau in zip(scores, masks, self.thresholds, strict=True)]

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds = [float(t) for t in state.get("thresholds", [])]


class _NofM:
    """Mixin: choose N:M semi-structured masks instead of unstructured ones."""

    pattern: ClassVar[tuple[int, int]] = (2, 4)

    def select(self, scores: list[torch.Tensor], sparsity: float, allocation: str) -> list[torch.Tensor]:
        n, m = self.pattern
        return n_of_m_masks(scores, sparsity, allocation, n, m)


@register_weight_method("2:4")
class SemiStructuredMagnitudeMethod(_NofM, MagnitudeMethod):
    """2:4 semi-structured sparsity (Mishra et al. 2021, NVIDIA ASP): of every 4 consecutive input weights of a row,
    the 2 of largest |W| are kept -- the pattern sparse tensor cores execute."""


@register_weight_method("2:4_movement")
class SemiStructuredMovementMethod(_NofM, MovementMethod):
    """2:4 semi-structured sparsity ranked by movement scores instead of magnitude."""


def build_weight_method(name: str) -> WeightMethod:
    if name not in WEIGHT_METHODS:
        raise ConfigError(f"weight_method: expected one of {sorted(WEIGHT_METHODS)}, got {name!r}")
    return WEIGHT_METHODS[name]()
