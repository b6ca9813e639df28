"""Prunable units (attention heads, FFN neurons) of each layer, seen through the weights that carry them.

A unit group is one layer's heads or neurons: *producer* modules emit the unit's features (query/key/value rows, the
FFN input rows) and one *consumer* module reads them (attention output / FFN output columns). Everything that needs
per-unit views of weights -- scorers, masks, compaction, counting -- goes through this module, so the Linear vs
GPT-2 Conv1D difference (transposed weights) lives in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from hfprune.pruning.architectures import get_architecture, transformer_layers


class UnitKind(StrEnum):
    HEADS = "heads"
    NEURONS = "neurons"


def _out_axis(module: nn.Module) -> int:
    """Weight axis of the output features: rows for Linear, columns for Conv1D (stored transposed)."""
    return 1 if isinstance(module, Conv1D) else 0


def _in_axis(module: nn.Module) -> int:
    return 0 if isinstance(module, Conv1D) else 1


def weight_axes(module: nn.Module) -> tuple[int, int]:
    """(output axis, input axis) of ``module.weight``."""
    return _out_axis(module), _in_axis(module)


def as_out_in(tensor: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``tensor`` (shaped like ``module.weight``) seen as (out_features, in_features): a transposed view for
    Conv1D. The map is its own inverse, so it also turns an (out, in) tensor back into the module's layout."""
    return tensor.t() if isinstance(module, Conv1D) else tensor


def feature_mask(unit_mask: torch.Tensor, unit_width: int, blocks: int = 1) -> torch.Tensor:
    """A unit keep-mask expanded to the features along the unit axis, in the block-major order of
    ``unit_element_index`` (e.g. GPT-2's fused [q | k | v] repeats the head mask three times)."""
    return (unit_mask > 0).repeat_interleave(unit_width).repeat(blocks)


def units_first(tensor: torch.Tensor, axis: int, num_units: int, blocks: int = 1) -> torch.Tensor:
    """View ``tensor`` as (num_units, -1): each row gathers everything that belongs to one unit along ``axis``.

    ``blocks`` > 1 handles fused projections whose ``axis`` holds several head-grouped blocks side by side
    (GPT-2's c_attn = [q | k | v]).
    """
    moved = tensor.movedim(axis, 0)
    if num_units == 0:  # a layer whose units were all removed
        return moved.new_zeros(0, 0)
    per_block = moved.reshape(blocks, num_units, -1)
    return per_block.transpose(0, 1).reshape(num_units, -1)


def unit_element_index(kept: torch.Tensor, num_units: int, unit_width: int, blocks: int = 1) -> torch.Tensor:
    """Feature indices (along the unit axis) of the kept units, in block-major order."""
    offsets = torch.arange(unit_width)
    per_block = (kept[:, None] * unit_width + offsets).reshape(-1)
    return torch.cat([per_block + b * num_units * unit_width for b in range(blocks)])


@dataclass(frozen=True)
class UnitTensor:
    """One parameter that carries units: its module, attribute name, unit axis and block count."""

    module: nn.Module
    name: str
    axis: int
    blocks: int
    is_producer: bool

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.module, self.name)


@dataclass
class UnitGroup:
    """One layer's units of one kind, with the modules that carry them."""

    layer: int
    kind: UnitKind
    producers: list[nn.Module]
    consumer: nn.Module
    unit_width: int
    blocks: int
    attention: nn.Module | None = None

    @property
    def num_units(self) -> int:
        first = self.producers[0]
        return first.weight.shape[_out_axis(first)] // (self.unit_width * self.blocks)

    def unit_tensors(self) -> list[UnitTensor]:
        """Producer weights and biases (unit-grouped outputs), then the consumer weight (unit-grouped inputs).
        The consumer's bias is shared by all units and is not listed."""
        tensors = []
        for module in self.producers:
            tensors.append(UnitTensor(module, "weight", _out_axis(module), self.blocks, True))
            if module.bias is not None:
                tensors.append(UnitTensor(module, "bias", 0, self.blocks, True))
        tensors.append(UnitTensor(self.consumer, "weight", _in_axis(self.consumer), 1, False))
        return tensors

    def views(self, producers: bool = True, consumer: bool = True) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(values, grads) of the selected unit tensors, each shaped (num_units, -1)."""
        n, views = self.num_units, []
        for t in self.unit_tensors():
            if (producers and t.is_producer) or (consumer and not t.is_producer):
                param = t.param
                grad = None if param.grad is None else units_first(param.grad.detach(), t.axis, n, t.blocks)
                views.append((units_first(param.detach(), t.axis, n, t.blocks), grad))
        return views

    def params_per_unit(self) -> int:
        """Parameters removed with one unit (computed from shapes, so it also holds for a group with no units)."""
        total = 0
        for t in self.unit_tensors():
            shape = list(t.param.shape)
            del shape[t.axis]
            total += math.prod(shape) * self.unit_width * t.blocks
        return total

    def keep(self, kept: torch.Tensor) -> None:
        """Physically remove all units but ``kept`` (sorted local indices) from the weights."""
        n = self.num_units
        for t in self.unit_tensors():
            index = unit_element_index(kept, n, self.unit_width, t.blocks).to(t.param.device)
            param = t.param
            sliced = param.detach().index_select(t.axis, index).clone()
            setattr(t.module, t.name, nn.Parameter(sliced, requires_grad=param.requires_grad))
        for module in {id(m): m for m in [*self.producers, self.consumer]}.values():
            _sync_feature_counts(module)

    def scatter_into(self, dense: UnitGroup, kept: torch.Tensor) -> None:
        """Copy this group's weights into the zeroed unit positions ``kept`` (dense numbering) of ``dense``."""
        for mine, theirs in zip(self.unit_tensors(), dense.unit_tensors(), strict=True):
            index = unit_element_index(kept, dense.num_units, self.unit_width, mine.blocks)
            with torch.no_grad():
                theirs.param.zero_()
                theirs.param.index_copy_(mine.axis, index.to(theirs.param.device), mine.param.detach())


def _sync_feature_counts(module: nn.Module) -> None:
    if isinstance(module, Conv1D):
        module.nx, module.nf = module.weight.shape
    else:
        module.out_features, module.in_features = module.weight.shape


def unit_groups(model: PreTrainedModel, kind: UnitKind) -> list[UnitGroup]:
    """Every layer's unit group of ``kind``, in layer order."""
    spec = get_architecture(model)
    head_dim = spec.head_dim(model.config)
    groups = []
    for index, layer in enumerate(transformer_layers(model)):
        if kind is UnitKind.HEADS:
            groups.append(UnitGroup(
                layer=index, kind=kind,
                producers=[layer.get_submodule(p) for p in spec.head_producers],
                consumer=layer.get_submodule(spec.head_consumer),
                unit_width=head_dim, blocks=spec.qkv_blocks,
                attention=layer.get_submodule(spec.attention),
            ))
        else:
            groups.append(UnitGroup(
                layer=index, kind=kind,
                producers=[layer.get_submodule(spec.ffn_producer)],
                consumer=layer.get_submodule(spec.ffn_consumer),
                unit_width=1, blocks=1,
            ))
    return groups
