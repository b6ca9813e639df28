"""Binary unit masks: choosing them from scores, and applying them during training.

A mask zeroes a unit's features at the input of its consumer (attention output projection, FFN output
projection). That removes the unit's whole contribution, exactly as slicing it out does, so masked logits equal
compacted logits; and no gradient reaches a masked unit's weights.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn as nn

from hfprune.pruning.units import UnitGroup


def select_masks(
    scores: list[torch.Tensor], sparsity: float, allocation: str, min_per_layer: int
) -> list[torch.Tensor]:
    """Keep-masks (1 = keep) removing ``round(sparsity * total units)`` lowest-scoring units.

    ``global`` ranks all layers' units together; ``per_layer`` removes the same fraction of each layer. Every layer
    keeps at least its ``min_per_layer`` best units. Ties break by (layer, index) so every process agrees.
    """
    if allocation == "per_layer":
        return [_layer_mask(s, round(sparsity * s.numel()), min_per_layer) for s in scores]
    protected = [_top_k_mask(s, min(min_per_layer, s.numel())) for s in scores]
    flat = torch.cat([s.float().masked_fill(p, float("inf")) for s, p in zip(scores, protected, strict=True)])
    n_prune = min(round(sparsity * flat.numel()), int(torch.isfinite(flat).sum()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    order = torch.sort(flat, stable=True).indices
    keep[order[:n_prune]] = False
    return [m.float() for m in torch.split(keep, [s.numel() for s in scores])]


def round_kept_up(masks: list[torch.Tensor], scores: list[torch.Tensor], multiple: int) -> list[torch.Tensor]:
    """Keep-masks whose kept count per layer is a multiple of ``multiple`` (or every unit), by keeping back the
    best-scoring removed units: with an N:M weight pattern the consumer's inputs then split into whole groups of M,
    so the pattern's sparsity is met exactly (a short trailing group cannot be N:M)."""
    if multiple <= 1:
        return masks
    rounded = []
    for mask, score in zip(masks, scores, strict=True):
        kept = int((mask > 0).sum())
        target = min(mask.numel(), -(-kept // multiple) * multiple)
        ranked = score.float().masked_fill(mask > 0, float("inf"))  # the kept units first, then the best removed
        rounded.append(_top_k_mask(ranked, target).float() if target != kept else mask)
    return rounded


def _top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        order = torch.sort(scores.float(), descending=True, stable=True).indices
        mask[order[:k]] = True
    return mask


def _layer_mask(scores: torch.Tensor, n_prune: int, min_keep: int) -> torch.Tensor:
    n_keep = max(scores.numel() - n_prune, min(min_keep, scores.numel()))
    return _top_k_mask(scores, n_keep).float()


class MaskHooks:
    """Forward pre-hooks multiplying each consumer's input by its unit mask (expanded over the unit width)."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def install(self, groups: list[UnitGroup], masks: list[torch.Tensor]) -> None:
        self.remove()
        for group, mask in zip(groups, masks, strict=True):
            expanded = mask.repeat_interleave(group.unit_width)
            self._handles.append(group.consumer.register_forward_pre_hook(_MaskInput(expanded)))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class _MaskInput:
    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        hidden, *rest = args
        if self.mask.device != hidden.device or self.mask.dtype != hidden.dtype:
            self.mask = self.mask.to(device=hidden.device, dtype=hidden.dtype)
        return (hidden * self.mask, *rest)


# model -> the pruner currently masking it, so that ``hfprune.compact(model)`` finds the masks
ACTIVE_PRUNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# model -> the WeightPruner currently masking its weights; compaction slices its masks along with the weights
ACTIVE_WEIGHT_PRUNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
