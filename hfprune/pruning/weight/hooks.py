"""Applying weight masks during training without changing the weights: W' = W * M, computed at each forward.

A forward pre-hook puts the masked tensor in place of the module's weight for the duration of its forward, and a
forward hook (``always_call``) puts the parameter back, so ``state_dict``, checkpoints, the optimizer and DDP only
ever see the untouched parameter. The product's backward is straight-through: ``weight.grad`` receives dL/dW' at
every position, pruned ones included, which is what movement scores need (Sanh et al. 2020); the pruner then zeroes
the pruned positions of the gradient before the optimizer step, so pruned weights are not trained.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _StraightThroughMask(torch.autograd.Function):
    """weight * mask forward; the gradient passes to ``weight`` unmasked."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def masked_weight(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W * M with a straight-through gradient to W."""
    return _StraightThroughMask.apply(weight, mask)


class _SwapWeight:
    """The pre-hook and hook pair of one module: weight -> weight * mask for one forward, then back."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask
        self.saved: list[nn.Parameter] = []

    def before(self, module: nn.Module, args: tuple) -> None:
        weight = module._parameters["weight"]
        if self.mask.device != weight.device or self.mask.dtype != weight.dtype:
            self.mask = self.mask.to(device=weight.device, dtype=weight.dtype)
        self.saved.append(weight)
        module._parameters["weight"] = masked_weight(weight, self.mask)

    def after(self, module: nn.Module, args: tuple, output: object) -> None:
        if self.saved:
            module._parameters["weight"] = self.saved.pop()


class WeightMaskHooks:
    """Installs and removes the weight-swapping hooks of a set of modules."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def install(self, modules: list[nn.Module], masks: list[torch.Tensor]) -> None:
        self.remove()
        for module, mask in zip(modules, masks, strict=True):
            swap = _SwapWeight(mask)
            self._handles.append(module.register_forward_pre_hook(swap.before))
            # prepended: a unit mask hook swapping the same weight must be undone after this one (LIFO)
            self._handles.append(module.register_forward_hook(swap.after, always_call=True, prepend=True))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
