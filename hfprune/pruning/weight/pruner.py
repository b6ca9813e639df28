"""``WeightPruner``: weight-level (unstructured or N:M) pruning of the prunable matrices of one model.

A plain object like ``StructuredPruner``, which drives it on the same schedule in combined runs: it is told the
scheduled sparsity, and, in combined runs, which heads and neurons are masked -- their weights are out of play and
the sparsity applies to the weights that remain. Masks multiply the weights during forward passes (see ``hooks``)
until ``apply`` zeroes the pruned weights for good. Its state is JSON-serialisable and exact (packed bits and raw
float32 bytes), so a resumed run continues with identical masks and scores.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning.config import WEIGHT_ALLOCATIONS
from hfprune.pruning.distributed import mean_across_processes
from hfprune.pruning.masks import ACTIVE_PRUNERS, ACTIVE_WEIGHT_PRUNERS
from hfprune.pruning.units import UnitGroup, UnitKind
from hfprune.pruning.weight.encoding import decode_floats, decode_mask, encode_floats, encode_mask
from hfprune.pruning.weight.hooks import WeightMaskHooks
from hfprune.pruning.weight.matrices import PrunableMatrix, prunable_matrices, rectangle
from hfprune.pruning.weight.methods import build_weight_method
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

UnitMasks = dict[UnitKind, list[torch.Tensor]]


class WeightPruner:
    """Prunes individual weights of the query/key/value, attention-output and FFN matrices toward ``target``.

    Driven per optimizer step by ``accumulate_scores`` then ``mask_gradients`` (before the step), and by
    ``update_masks`` at the schedule's update points (``refresh`` in between); ``StructuredPruner`` does all that.
    """

    def __init__(self, model: PreTrainedModel, target: float, method: str = "movement",
                 allocation: str = "per_matrix") -> None:
        if allocation not in WEIGHT_ALLOCATIONS:
            raise ConfigError(f"weight_allocation: expected one of {sorted(WEIGHT_ALLOCATIONS)}, got {allocation!r}")
        self.model = model
        self.target = target
        self.method = build_weight_method(method)
        pattern = self.method.pattern_sparsity()
        if pattern is not None and target != pattern:
            raise ConfigError(f"weight_sparsity: weight_method {method!r} fixes it to {pattern}, got {target!r}")
        self.allocation = allocation
        self.matrices: list[PrunableMatrix] = prunable_matrices(model)
        self.masks = [torch.ones_like(m.weight, dtype=torch.bool) for m in self.matrices]
        self.scores: list[torch.Tensor | None] = [
            torch.zeros_like(m.weight, dtype=torch.float32) if self.method.needs_gradients else None
            for m in self.matrices
        ]
        self.remaining = [tuple(t.to(m.weight.device) for t in m.remaining(None)) for m in self.matrices]
        self.sparsity = 0.0
        self.scored_steps = 0
        self._hooks = WeightMaskHooks()
        self.attach()

    # -- events ------------------------------------------------------------------------------------------------
    def accumulate_scores(self, check_finite: bool = True) -> bool:
        """Add this optimizer step's straight-through gradients to the scores (False: skipped, as on a step with a
        non-finite gradient or for a method that needs none)."""
        if not self.method.needs_gradients or (check_finite and not self.gradients_finite()):
            return False
        for matrix, state in zip(self.matrices, self.scores, strict=True):
            if matrix.weight.grad is not None:
                self.method.accumulate(matrix.weight, matrix.weight.grad, state)
        self.scored_steps += 1
        return True

    def mask_gradients(self) -> None:
        """Zero the gradient of pruned weights, so that the optimizer trains only the kept ones."""
        for matrix, mask in zip(self.matrices, self.masks, strict=True):
            if matrix.weight.grad is not None:
                matrix.weight.grad.mul_(mask)

    def update_masks(self, sparsity: float, unit_masks: UnitMasks | None = None) -> None:
        """Masks at ``sparsity`` of the weights left by ``unit_masks`` (head / FFN keep-masks), averaged scores."""
        self.remaining = [self._remaining(m, unit_masks or {}) for m in self.matrices]
        scores = [self._region(i, mean_across_processes(self.method.score(m.weight, s)))
                  for i, (m, s) in enumerate(zip(self.matrices, self.scores, strict=True))]
        self._set_masks(self.method.select(scores, sparsity, self.allocation))
        self.sparsity = sparsity

    def refresh(self) -> bool:
        """Between scheduled updates, let the method move its masks (soft movement); True if it did."""
        if not self.method.refreshes:
            return False
        scores = [self._region(i, s) for i, s in enumerate(self.scores)]
        masks = self.method.refresh(scores, [self._region(i, m) for i, m in enumerate(self.masks)])
        if masks is None:
            return False
        self._set_masks(masks)
        return True

    def keep_units(self, group: UnitGroup, kept: torch.Tensor) -> None:
        """Slice masks and scores as ``group.keep(kept)`` is about to slice the weights (call it before)."""
        modules = {id(m) for m in [*group.producers, group.consumer]}
        for i, matrix in enumerate(self.matrices):
            if id(matrix.module) not in modules or matrix.kind is not group.kind or matrix.layer != group.layer:
                continue
            axis, index = matrix.unit_index(kept, group.num_units)
            index = index.to(self.masks[i].device)
            self.masks[i] = self.masks[i].index_select(axis, index)
            if self.scores[i] is not None:
                self.scores[i] = self.scores[i].index_select(axis, index)
            rows, cols = self.remaining[i]
            self.remaining[i] = (rows[index], cols) if matrix.is_producer else (rows, cols[index])
        self.attach()

    def apply(self) -> None:
        """Zero the pruned weights for good and stop masking."""
        self.detach()
        with torch.no_grad():
            for matrix, mask in zip(self.matrices, self.masks, strict=True):
                matrix.weight.mul_(mask.to(matrix.weight.device))

    # -- masking -----------------------------------------------------------------------------------------------
    def attach(self) -> None:
        self._hooks.install([m.module for m in self.matrices], self.masks)
        ACTIVE_WEIGHT_PRUNERS[self.model] = self

    def detach(self) -> None:
        self._hooks.remove()
        if ACTIVE_WEIGHT_PRUNERS.get(self.model) is self:
            del ACTIVE_WEIGHT_PRUNERS[self.model]

    # -- counting ----------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(kept, total): nonzero masked weights, and weights in play, over all matrices."""
        kept = total = 0
        for i, matrix in enumerate(self.matrices):
            rows, cols = self.remaining[i]
            total += int(rows.sum()) * int(cols.sum())
            kept += int(torch.count_nonzero(self._region(i, matrix.weight.detach() * self.masks[i])))
        return kept, total

    def matrix_sparsity(self) -> dict[str, tuple[int, int]]:
        """Per matrix name: (pruned, in play) weights under the current masks."""
        result = {}
        for i, matrix in enumerate(self.matrices):
            region = self._region(i, self.masks[i])
            result[matrix.name] = (int((~region).sum()), region.numel())
        return result

    # -- persistence -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable, exact state: masks as packed bits, scores as float32 bytes, both base64."""
        matrices = []
        for i, matrix in enumerate(self.matrices):
            rows, cols = self.remaining[i]
            scores = self.scores[i]
            matrices.append({"name": matrix.name, "shape": list(self.masks[i].shape),
                             "mask": encode_mask(self.masks[i]), "rows": encode_mask(rows),
                             "cols": encode_mask(cols), "scores": None if scores is None else encode_floats(scores)})
        return {"method": self.method.name, "allocation": self.allocation, "sparsity": self.sparsity,
                "scored_steps": self.scored_steps, "method_state": self.method.state_dict(), "matrices": matrices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_compatible(state)
        for i, (matrix, saved) in enumerate(zip(self.matrices, state["matrices"], strict=True)):
            device = matrix.weight.device
            self.masks[i] = decode_mask(saved["mask"], saved["shape"]).to(device)
            out_features, in_features = matrix.out_in(matrix.weight).shape
            self.remaining[i] = (decode_mask(saved["rows"], [out_features]).to(device),
                                 decode_mask(saved["cols"], [in_features]).to(device))
            if self.scores[i] is not None:
                self.scores[i] = decode_floats(saved["scores"], saved["shape"]).to(device)
        self.sparsity = float(state["sparsity"])
        self.scored_steps = int(state["scored_steps"])
        self.method.load_state_dict(state["method_state"])
        self.attach()

    def _check_compatible(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method.name:
            raise HfpruneError(f"weight pruning state: saved with weight_method {state.get('method')!r}, "
                               f"resumed with {self.method.name!r}")
        saved = [(m["name"], list(m["shape"])) for m in state["matrices"]]
        expected = [(m.name, list(mask.shape)) for m, mask in zip(self.matrices, self.masks, strict=True)]
        if saved != expected:
            raise HfpruneError(f"weight pruning state: matrices {saved[:3]}... do not match the model's "
                               f"{expected[:3]}...")

    # -- helpers -----------------------------------------------------------------------------------------------
    def gradients_finite(self) -> bool:
        return all(m.weight.grad is None or bool(torch.isfinite(m.weight.grad).all()) for m in self.matrices)

    def _remaining(self, matrix: PrunableMatrix, unit_masks: UnitMasks) -> tuple[torch.Tensor, torch.Tensor]:
        kind_masks = unit_masks.get(matrix.kind)
        rows, cols = matrix.remaining(None if kind_masks is None else kind_masks[matrix.layer])
        return rows.to(matrix.weight.device), cols.to(matrix.weight.device)

    def _region(self, index: int, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (weight layout) as (out, in), restricted to the rows and columns still in play."""
        rows, cols = self.remaining[index]
        return self.matrices[index].out_in(tensor)[rows][:, cols]

    def _set_masks(self, region_masks: list[torch.Tensor]) -> None:
        for i, (matrix, region) in enumerate(zip(self.matrices, region_masks, strict=True)):
            full = torch.zeros(matrix.out_in(matrix.weight).shape, dtype=torch.bool, device=matrix.weight.device)
            full[rectangle(*self.remaining[i])] = region.reshape(-1).to(full.device)
            self.masks[i] = matrix.out_in(full).contiguous()
        self.attach()


def weight_counts(model: PreTrainedModel) -> tuple[int, int]:
    """(kept, total) weights of the prunable matrices: total = those left by head / FFN pruning (masked or
    compacted), kept = those of them that are nonzero after weight masks (or zeroed weights, once applied)."""
    weights = ACTIVE_WEIGHT_PRUNERS.get(model)
    if weights is not None:
        return weights.counts()
    structured = ACTIVE_PRUNERS.get(model)
    unit_masks: UnitMasks = getattr(structured, "masks", {}) or {}
    kept = total = 0
    for matrix in prunable_matrices(model):
        kind_masks = unit_masks.get(matrix.kind)
        features = None
        if kind_masks is not None:  # through the pruner's own view of the units (GQA: key/value groups or queries)
            features = structured.groups[matrix.kind][matrix.layer].features(matrix.module, kind_masks[matrix.layer])
        rows, cols = matrix.remaining_features(features)
        region = matrix.out_in(matrix.weight.detach())[rows.to(matrix.weight.device)][:, cols.to(matrix.weight.device)]
        total += region.numel()
        kept += int(torch.count_nonzero(region))
    return kept, total
