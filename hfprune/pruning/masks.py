"""Binary unit masks: choosing them from scores, and applying them during training.

A mask zeroes a unit's features at the input of its consumer (attention output projection, FFN output
projection). That removes the unit's whole contribution, exactly as slicing it out does, so masked logits equal
compacted logits. With the plain hooks no gradient reaches a masked unit's weights, so gradient scores of masked
units freeze. The straight-through hooks (``MaskHooks.install(..., straight_through=True)``) give the same forward
pass but let the gradient through the mask, as Sanh et al. (2020) do for weights (``weight/hooks.py``): the
consumer sees W' = W * M (M zeroing the masked units' input columns) with dL/dW' passed to W unmasked, and the
gradient reaching the masked features' input is W^T dL/dy instead of W'^T dL/dy, so the producers get the gradient
they would get with the unit switched on. Then, for every unit, masked or not, the consumer columns' sum of
W * dL/dW' is the gradient at the unit's gate (Michel et al. 2019), and all of the unit's weights keep training
from the gradient of the pruned model (Lin et al. 2020, "Dynamic model pruning with feedback").
"""

from __future__ import annotations

import weakref

import torch
import torch.nn as nn

from hfprune.errors import HfpruneError
from hfprune.pruning.units import UnitGroup, as_out_in, weight_axes
from hfprune.pruning.weight.hooks import masked_weight


def select_masks(
    scores: list[torch.Tensor], sparsity: float, allocation: str, min_per_layer: int, round_to: int = 1
) -> list[torch.Tensor]:
    """Keep-masks (1 = keep) removing ``round(sparsity * total units)`` lowest-scoring units.

    ``global`` ranks all layers' units together; ``per_layer`` removes the same fraction of each layer; ``uniform``
    too, and keeps the same count in every layer after rounding. Every layer keeps at least its ``min_per_layer``
    best units. Ties break by (layer, index) so every process agrees.
    With ``round_to`` > 1 each layer's kept count is then moved to a multiple of ``round_to`` (or the layer's full
    size), keeping the total as close to the unrounded one as those steps allow (see ``rounded_counts``).
    """
    sizes = [s.numel() for s in scores]
    if allocation == "uniform" and len(set(sizes)) > 1:
        raise HfpruneError(f"allocation 'uniform': expected layers of equal size, got {sizes} units")
    if allocation == "global":
        masks = _global_masks(scores, sparsity, min_per_layer)
    else:
        masks = [_layer_mask(s, round(sparsity * s.numel()), min_per_layer) for s in scores]
    return round_masks(masks, scores, round_to, min_per_layer, uniform=allocation == "uniform")


def round_masks(masks: list[torch.Tensor], scores: list[torch.Tensor], round_to: int,
                min_per_layer: int, uniform: bool = False) -> list[torch.Tensor]:
    """``masks`` with each layer's kept count moved to a multiple of ``round_to`` (see ``rounded_counts``), the
    best-scoring units kept; with ``uniform`` every layer rounds alike."""
    if round_to <= 1:
        return masks
    sizes = [s.numel() for s in scores]
    if uniform:  # every layer rounds alike (the total's largest-remainder split would not)
        counts = rounded_counts([int(masks[0].sum())], sizes[:1], round_to, min_per_layer) * len(masks)
    else:
        counts = rounded_counts([int(m.sum()) for m in masks], sizes, round_to, min_per_layer)
    return [_top_k_mask(s, k).float() for s, k in zip(scores, counts, strict=True)]


def rounded_counts(counts: list[int], sizes: list[int], step: int, min_per_layer: int) -> list[int]:
    """Per-layer kept counts moved to multiples of ``step`` (a layer's full size is allowed too) for GEMM shapes the
    CPU kernels run at full speed, keeping the total near ``sum(counts)``.

    A layer kept whole stays whole; the others first get their count rounded down (but at least
    ``min_per_layer`` rounded up to a step); the steps still missing to reach the total rounded to a multiple of
    ``step`` go to the layers that lost most in the rounding down (largest remainder; ties by layer index, so every
    process agrees).
    """
    floor_to = [min(size, -(-min_per_layer // step) * step) if min_per_layer else 0 for size in sizes]
    rounded = [size if count == size else max(low, count // step * step)
               for count, size, low in zip(counts, sizes, floor_to, strict=True)]
    missing = round(sum(counts) / step) * step - sum(rounded)
    order = sorted(range(len(counts)), key=lambda i: (-(counts[i] - rounded[i]), i))
    for i in order:
        if missing <= 0:
            break
        grant = min(step, sizes[i] - rounded[i])
        if grant > 0 and counts[i] > rounded[i]:
            rounded[i] += grant
            missing -= grant
    return rounded


def _global_masks(scores: list[torch.Tensor], sparsity: float, min_per_layer: int) -> list[torch.Tensor]:
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
    """Forward hooks masking each consumer's input by its unit mask (expanded over the unit width); with
    ``straight_through`` the gradient passes the mask (see the module docstring)."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def install(self, groups: list[UnitGroup], masks: list[torch.Tensor], straight_through: bool = False) -> None:
        self.remove()
        for group, mask in zip(groups, masks, strict=True):
            expanded = mask.repeat_interleave(group.unit_width)
            if not straight_through:
                self._handles.append(group.consumer.register_forward_pre_hook(_MaskInput(expanded)))
                continue
            hook = _StraightThroughMask(group.consumer, expanded)
            self._handles.append(group.consumer.register_forward_pre_hook(hook.before))
            # prepended: hooks that swap the same weight (weight masks) must put it back in reverse order
            self._handles.append(group.consumer.register_forward_hook(hook.after, always_call=True, prepend=True))

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


class _OutputGradient:
    """dL/dy of one consumer call, stored by a hook on its output for ``_Feedback`` to read."""

    def __init__(self) -> None:
        self.grad: torch.Tensor | None = None

    def store(self, grad: torch.Tensor) -> None:
        self.grad = grad


class _Feedback(torch.autograd.Function):
    """Identity forward on the consumer's input; backward adds dL/dy @ W[:, masked], the part of W^T dL/dy that
    the zero columns of W' withheld from the masked features."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, masked: torch.Tensor,
                output: _OutputGradient) -> torch.Tensor:
        ctx.save_for_backward(weight, masked)
        ctx.output = output
        return hidden.view_as(hidden)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        weight, masked = ctx.saved_tensors
        grad_out = ctx.output.grad
        if grad_out is None:  # the output took no part in the loss
            return grad, None, None, None
        withheld = grad_out @ weight[:, masked].to(grad_out.dtype)
        return grad.index_add(-1, masked, withheld.to(grad.dtype)), None, None, None


class _StraightThroughMask:
    """The pre-hook / hook pair of one consumer: W -> W' = W * M with a straight-through gradient to W, and the
    masked features' input gradient completed by ``_Feedback``, for one forward; then W back."""

    def __init__(self, consumer: nn.Module, mask: torch.Tensor) -> None:
        self._plain = _MaskInput(mask)
        _, in_axis = weight_axes(consumer)
        shape = [1, 1]
        shape[in_axis] = mask.numel()
        self.mask = mask.reshape(shape)  # the input-column mask in the weight's own layout
        self.masked = torch.nonzero(mask == 0).flatten()
        self.saved: list[tuple[nn.Parameter, _OutputGradient] | None] = []

    def before(self, module: nn.Module, args: tuple) -> tuple | None:
        weight = module._parameters["weight"]
        if not (torch.is_grad_enabled() and weight.requires_grad) or self.masked.numel() == 0:
            self.saved.append(None)  # no gradient to shape: the plain mask (all ones: nothing) is enough
            return None if self.masked.numel() == 0 else self._plain(module, args)
        if self.mask.device != weight.device or self.mask.dtype != weight.dtype:
            self.mask = self.mask.to(device=weight.device, dtype=weight.dtype)
            self.masked = self.masked.to(weight.device)
        output = _OutputGradient()
        self.saved.append((weight, output))
        module._parameters["weight"] = masked_weight(weight, self.mask)
        hidden, *rest = args
        return (_Feedback.apply(hidden, as_out_in(weight.detach(), module), self.masked, output), *rest)

    def after(self, module: nn.Module, args: tuple, output: object) -> None:
        if not self.saved:
            return
        saved = self.saved.pop()
        if saved is None:
            return
        weight, store = saved
        module._parameters["weight"] = weight
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(store.store)


# model -> the pruner currently masking it, so that ``hfprune.compact(model)`` finds the masks
ACTIVE_PRUNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# model -> the WeightPruner currently masking its weights; compaction slices its masks along with the weights
ACTIVE_WEIGHT_PRUNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
