"""``StructuredPruner``: scores, masks and schedule for one model, as a plain object.

The Trainer callback only tells it when a step happened; one-shot pruning drives it directly. With
``weight_sparsity`` it also drives a ``WeightPruner`` on the same schedule and at the same update points: head / FFN
masks are chosen first, then weight masks among the weights those leave. Its state is JSON-serialisable so it
survives Trainer checkpoints exactly (float32 values round-trip through Python floats, weight masks and scores
through packed bits and raw bytes).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import PreTrainedModel

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning.compaction import UnitMasks, compact
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.distributed import mean_across_processes
from hfprune.pruning.gqa import equal_group_masks
from hfprune.pruning.latency_budget import LATENCY_TABLES, latency_budget_of, predicted_ms
from hfprune.pruning.latency_table import LatencyTable
from hfprune.pruning.layers import LayerDropper, layers_removed, remove_layers
from hfprune.pruning.masks import ACTIVE_PRUNERS, MaskHooks, round_kept_up
from hfprune.pruning.nonfinite import model_name
from hfprune.pruning.schedule import cubic_sparsity
from hfprune.pruning.scoring import build_scorer
from hfprune.pruning.structure import PrunedStructure
from hfprune.pruning.units import UnitKind, unit_groups
from hfprune.pruning.weight.pruner import WeightPruner
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)


class StructuredPruner:
    """Prunes the heads and FFN neurons of ``model`` toward ``config``'s sparsities, and with ``weight_sparsity``
    the individual weights of the matrices that carry them (``self.weights``)."""

    def __init__(self, model: PreTrainedModel, config: PruningConfig, latency_table: LatencyTable | None = None
                 ) -> None:
        config.check_model(model.config, model_name(model))
        self.model = model
        self.config = config
        self.scorer = build_scorer(config.scoring, seed=config.seed, regularization=config.regularization,
                                   threshold=config.threshold)
        self.targets = {UnitKind.HEADS: config.head_sparsity, UnitKind.NEURONS: config.ffn_sparsity}
        self.min_per_layer = {
            UnitKind.HEADS: config.min_heads_per_layer, UnitKind.NEURONS: config.min_neurons_per_layer
        }
        self.round_to = {UnitKind.HEADS: config.head_round_to, UnitKind.NEURONS: config.ffn_round_to}
        # with a latency target the budget decides both kinds' widths (``latency_budget``); measured before masking
        self.latency = latency_budget_of(model, config, latency_table) if config.latency_targeted else None
        if self.latency is not None:  # the layers layer_sparsity removes in the end (LayerDropper.update)
            self.latency.check_feasible(self.min_per_layer,
                                        layers_removed(config.layer_sparsity, self.latency.table.layers))
        self.groups = {kind: unit_groups(model, kind, config.head_granularity)
                       for kind, target in self.targets.items() if target > 0 or self.latency is not None}
        self.scores = {kind: [torch.zeros(g.num_units) for g in groups] for kind, groups in self.groups.items()}
        self.masks: UnitMasks = {k: [torch.ones(g.num_units) for g in groups] for k, groups in self.groups.items()}
        self.sparsity = dict.fromkeys(self.groups, 0.0)
        self.scored_steps = 0
        self._hooks = {kind: MaskHooks() for kind in self.groups}
        self.weights: WeightPruner | None = None
        if config.weight_sparsity > 0:
            if any(group.shared for group in self.groups.get(UnitKind.HEADS, [])):
                raise ConfigError("head_granularity: weight pruning follows key/value groups of grouped-query "
                                  "attention, so expected 'group' with weight_sparsity > 0, got 'query'")
            self.weights = WeightPruner(model, config.weight_sparsity, config.weight_method, config.weight_allocation)
        self.kept_multiple = {kind: self._kept_multiple(groups) for kind, groups in self.groups.items()}
        self.layers = LayerDropper(model, config.layer_sparsity) if config.layer_sparsity > 0 else None
        self.attach()

    def _kept_multiple(self, groups: list[Any]) -> int:
        """Units a layer keeps in multiples of, so an N:M weight pattern tiles the consumer's inputs (M features per
        group: M / gcd(unit width, M) units); 1 without a pattern."""
        pattern = None if self.weights is None else self.weights.method.pattern
        if pattern is None or not groups:
            return 1
        return pattern[1] // math.gcd(groups[0].unit_width, pattern[1])

    @property
    def needs_gradients(self) -> bool:
        """Whether any score in play (unit or weight) accumulates from gradients."""
        structured = bool(self.groups) and self.scorer.needs_gradients
        return structured or (self.weights is not None and self.weights.method.needs_gradients)

    @property
    def needs_data(self) -> bool:
        """Whether pruning needs forward passes on data: gradient scores, or layers' block influence."""
        return self.needs_gradients or self.layers is not None

    # -- events ------------------------------------------------------------------------------------------------
    def accumulate_scores(self, step: int | None = None, total_steps: int | None = None) -> bool:
        """Add this optimizer step's contribution to the scores; skipped (False) if any gradient is not finite,
        as happens on fp16 overflow steps that the optimizer skips too. ``step`` / ``total_steps`` place it on the
        schedule (for scorers whose update depends on it); without them it counts as the end of the ramp.

        Weight scores see the straight-through gradient of every weight first; then the gradients of pruned
        weights are zeroed (they are not trained), so unit scores see the gradients of the masked weights -- except
        a straight-through unit scorer's, which read theirs before, as weight masks also cover masked units."""
        finite = self.needs_gradients and self._gradients_finite()
        if finite and self.weights is not None:
            self.weights.accumulate_scores(check_finite=False)
        progress = 1.0 if step is None else self._progress(step, total_steps)
        units_first = self.scorer.straight_through
        if finite and units_first:
            self._accumulate_units(progress)
        if self.weights is not None:
            self.weights.mask_gradients()
        if not finite:
            return False
        if not units_first:
            self._accumulate_units(progress)
        self.scored_steps += 1
        return True

    def _accumulate_units(self, progress: float) -> None:
        if self.scorer.needs_gradients:
            for kind, groups in self.groups.items():
                self.scorer.accumulate_groups(groups, self.scores[kind], progress)

    def maybe_update_masks(self, step: int, total_steps: int) -> bool:
        """Recompute masks at the schedule's update points; masks are frozen during the cool-down. Between update
        points, a weight method may refresh its masks (soft movement); that does not count as an update."""
        warmup, end = self._ramp(total_steps)
        if step < warmup or step > end:
            return False
        if (step - warmup) % self.config.mask_update_interval and step != end:
            if self.weights is not None:
                self.weights.refresh()
            return False
        self.update_masks(step, total_steps)
        return True

    def update_masks(self, step: int, total_steps: int) -> None:
        warmup, end = self._ramp(total_steps)
        progress = self._progress(step, total_steps)
        if self.latency is not None:
            removed: list[int] = []
            if self.layers is not None:  # layers first: the widths then fill the budget the kept layers leave
                self.layers.update(cubic_sparsity(step, total_steps, self.layers.target, warmup, total_steps - end))
                removed = [i for i, keep in enumerate(self.layers.mask.tolist()) if not keep]
            scores = {kind: [mean_across_processes(self.scorer.score(g, s)) for g, s in
                             zip(groups, self.scores[kind], strict=True)] for kind, groups in self.groups.items()}
            self.masks = self.latency.select(scores, progress, self.min_per_layer, self.round_to, removed)
            self.sparsity = self.achieved_sparsity()
            self.attach()
            logger.debug("step %d: latency budget %.3f ms, predicted %.3f ms", step,
                         self.latency.budget_ms(progress), predicted_ms(self.latency.table, self.masks, removed))
            return
        for kind, groups in self.groups.items():
            sparsity = cubic_sparsity(step, total_steps, self.targets[kind], warmup, total_steps - end)
            scores = [mean_across_processes(self.scorer.score(g, s)) for g, s in zip(groups, self.scores[kind],
                                                                                      strict=True)]
            masks = self.scorer.select(scores, sparsity, self.config.allocation, self.min_per_layer[kind],
                                       self.round_to[kind], progress)
            masks = round_kept_up(masks, scores, self.kept_multiple[kind])
            if kind is UnitKind.HEADS:
                masks = equal_group_masks(masks, scores, groups, self.config.allocation == "uniform",
                                          self.min_per_layer[kind])
            self.masks[kind] = masks
            self.sparsity[kind] = sparsity
        if self.weights is not None:
            self.weights.update_masks(cubic_sparsity(step, total_steps, self.weights.target, warmup, total_steps - end),
                                      self.masks)
        if self.layers is not None:
            self.layers.update(cubic_sparsity(step, total_steps, self.layers.target, warmup, total_steps - end))
        self.attach()
        logger.debug("step %d: sparsity %s, weights %s", step, {k.value: round(v, 4) for k, v in self.sparsity.items()},
                     None if self.weights is None else round(self.weights.sparsity, 4))

    def scheduled_sparsities(self, step: int, total_steps: int) -> dict[str, float]:
        """The schedule's sparsity at ``step`` for heads, FFN neurons and weights (0 for what is not pruned): what
        masks are chosen for at an update point; between update points the masks keep the last update's. With a
        latency target, the predicted-latency budget (``latency_ms``) instead of head and FFN sparsities."""
        warmup, end = self._ramp(total_steps)
        weights = 0.0 if self.weights is None else self.weights.target
        if self.latency is not None:  # widths follow the latency budget, which ramps on the same cubic schedule
            progress = cubic_sparsity(step, total_steps, 1.0, warmup, total_steps - end)
            return {"weight": cubic_sparsity(step, total_steps, weights, warmup, total_steps - end),
                    "latency_ms": self.latency.budget_ms(progress)}
        finals = {"head": self.targets[UnitKind.HEADS], "ffn": self.targets[UnitKind.NEURONS], "weight": weights}
        return {name: cubic_sparsity(step, total_steps, final, warmup, total_steps - end)
                for name, final in finals.items()}

    def finalize(self, total_steps: int) -> None:
        """Make sure the final sparsity is reached (e.g. when a run stopped before the end of its ramp)."""
        weights_short = self.weights is not None and self.weights.sparsity < self.weights.target
        latency_short = self.latency is not None and self.latency.progress < 1
        layers_short = self.layers is not None and self.layers.sparsity < self.layers.target
        units_short = bool(self._below_targets(self.sparsity))
        if weights_short or latency_short or layers_short or units_short:
            self.update_masks(total_steps, total_steps)
        # a scorer whose targets only cap it (soft_movement's threshold decides what goes) may end below them by
        # design; say so, or a user who asked for 70% gets 64% without noticing
        short = self._below_targets(self.achieved_sparsity()) if self.scorer.target_is_a_cap else {}
        if short:
            settings = " or ".join(f"{name} (now {getattr(self.config, name):g})" for name in self.scorer.settings)
            logger.warning("%s ended below its targets (sparsity, target: %s): the scorer decides how many units "
                           "go, up to the target; raise %s to remove more", self.config.scoring, short, settings)

    def _below_targets(self, sparsity: dict[UnitKind, float]) -> dict[str, tuple[float, float]]:
        """Each unit kind whose ``sparsity`` is below its target: name -> (sparsity, target)."""
        return {kind.value: (round(value, 4), self.targets[kind]) for kind, value in sparsity.items()
                if value < self.targets[kind]}

    def achieved_sparsity(self) -> dict[UnitKind, float]:
        """The share of each kind's units the masks remove (``self.sparsity`` is what the schedule asked for; rounding
        and soft_movement's threshold may remove less)."""
        return {kind: 1 - sum(float(m.sum()) for m in masks) / sum(m.numel() for m in masks)
                for kind, masks in self.masks.items()}

    def restore_best(self, state: dict[str, Any], checkpoint: str) -> None:
        """Take the masks and scores of the checkpoint whose weights the model now holds (``load_best_model_at_end``),
        as they are: the best model is that step's masked model, even if the schedule had not reached its targets
        then (a warning says so)."""
        self.load_state_dict(state)
        short = self._below_targets(self.sparsity)
        if self.weights is not None and self.weights.sparsity < self.weights.target:
            short["weights"] = (round(self.weights.sparsity, 4), self.weights.target)
        if short:
            logger.warning("best checkpoint %s was saved before the schedule reached its targets (sparsity, target: "
                           "%s); the model keeps its masks. Evaluate only in the cool-down (e.g. eval_steps) to get "
                           "the target sparsity", checkpoint, short)
        logger.info("masks of the best checkpoint %s restored with its weights", checkpoint)

    def compact(self, apply_weights: bool = True) -> PrunedStructure:
        """Slice the masked units out of the model and stop masking them. Weight masks are sliced along; with
        ``apply_weights`` the pruned weights are then zeroed for good and weight masking stops too."""
        masks = self.masks
        self.detach()
        structure = compact(self.model, masks)
        if self.layers is not None:
            structure = remove_layers(self.model, self.layers.kept())
        if self.latency is not None:
            LATENCY_TABLES[self.model] = self.latency.table
        if self.weights is not None and apply_weights:
            self.weights.apply()
        return structure

    # -- masking -----------------------------------------------------------------------------------------------
    def attach(self) -> None:
        for kind, hooks in self._hooks.items():
            hooks.install(self.groups[kind], self.masks[kind], straight_through=self.scorer.straight_through)
        ACTIVE_PRUNERS[self.model] = self
        if self.weights is not None:
            self.weights.attach()
        if self.layers is not None:
            self.layers.attach()

    def detach(self) -> None:
        """Stop masking units; weight masks stay until ``self.weights.apply()`` or ``.detach()``."""
        for hooks in self._hooks.values():
            hooks.remove()
        if self.layers is not None:
            self.layers.detach()
        if ACTIVE_PRUNERS.get(self.model) is self:
            del ACTIVE_PRUNERS[self.model]

    # -- persistence -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: scores, masks, current sparsities, and the weight pruner's state."""
        return {
            "scored_steps": self.scored_steps,
            "scores": {k.value: [s.tolist() for s in v] for k, v in self.scores.items()},
            "masks": {k.value: [m.tolist() for m in v] for k, v in self.masks.items()},
            "sparsity": {k.value: v for k, v in self.sparsity.items()},
            "weights": None if self.weights is None else self.weights.state_dict(),
            "latency": None if self.latency is None else self.latency.state_dict(),
            "layers": None if self.layers is None else self.layers.state_dict(),
        }

    @classmethod
    def from_state(cls, model: PreTrainedModel, config: PruningConfig, state: dict[str, Any] | None
                   ) -> StructuredPruner:
        """A pruner resuming ``state`` (a checkpoint's), or a fresh one when it is None. A latency-targeted state
        brings its own table, so resuming neither re-times one nor judges the target against a new measurement."""
        saved = (state or {}).get("latency") or {}
        table = LatencyTable.from_dict(saved["table"], "pruning state latency table") if saved.get("table") else None
        pruner = cls(model, config, latency_table=table)
        if state is not None:
            pruner.load_state_dict(state)
        return pruner

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for kind in self.groups:
            self.scores[kind] = [torch.tensor(s, dtype=torch.float32) for s in state["scores"][kind.value]]
            self.masks[kind] = [torch.tensor(m, dtype=torch.float32) for m in state["masks"][kind.value]]
            self.sparsity[kind] = float(state["sparsity"][kind.value])
        self.scored_steps = int(state["scored_steps"])
        if self.weights is not None:
            if not state.get("weights"):
                raise HfpruneError("pruning state: weight_sparsity > 0 but the saved state has no weight masks "
                                   "(it was saved by a run without weight pruning)")
            self.weights.load_state_dict(state["weights"])
        if self.latency is not None and state.get("latency"):
            self.latency.load_state_dict(state["latency"])
        if self.layers is not None:
            if not state.get("layers"):
                raise HfpruneError("pruning state: layer_sparsity > 0 but the saved state has no layer scores (it was "
                                   "saved by a run without layer pruning)")
            self.layers.load_state_dict(state["layers"])
        self.attach()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _ramp(self, total_steps: int) -> tuple[int, int]:
        warmup = int(self.config.warmup_ratio * total_steps)
        end = total_steps - int(self.config.cooldown_ratio * total_steps)
        return warmup, max(end, warmup)

    def _progress(self, step: int, total_steps: int) -> float:
        """The cubic schedule's fraction of the way to the final sparsities at ``step``, in [0, 1]."""
        warmup, end = self._ramp(total_steps)
        return cubic_sparsity(step, total_steps, 1.0, warmup, total_steps - end)

    def _gradients_finite(self) -> bool:
        if self.weights is not None:  # its matrices include every unit group's producers and consumer
            return self.weights.gradients_finite()
        for groups in self.groups.values():
            for group in groups:
                for module in [*group.producers, group.consumer]:
                    grad = module.weight.grad
                    if grad is not None and not torch.isfinite(grad).all():
                        return False
        return True
