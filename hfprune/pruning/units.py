"""Prunable units (attention heads, FFN neurons) of each layer, seen through the weights that carry them.

A unit group is one layer's heads or neurons: *producer* modules emit the unit's features (query/key/value rows, the
FFN input rows) and one *consumer* module reads them (attention output / FFN output columns). Everything that needs
per-unit views of weights -- scorers, masks, compaction, counting -- goes through this module, so the Linear vs
GPT-2 Conv1D difference (transposed weights) lives in one place. Unit counts are read off the weights' shapes, never
off the config, so they are right for a compacted model and for a model pruned by another tool.

Grouped-query attention (Llama, Qwen2, Mistral) has two views of a layer's heads (``HEAD_GRANULARITIES``):

- ``group``: a unit is one key/value group -- its key and value head with every query head that reads it (query
  rows, key/value rows, output columns). Removing units keeps the query heads per key/value head unchanged.
- ``query``: a unit is one query head (its query rows and output columns); key/value heads are *shared* tensors,
  kept while any query head of their group is. Compaction needs every kept group to keep the same number of query
  heads (transformers repeats each key/value head a fixed number of times).

Without grouped-query attention both views are the classic one: a unit is a head with its q/k/v rows and output
columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from hfprune.errors import HfpruneError
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


HEAD_GRANULARITIES = ("group", "query")


@dataclass(frozen=True)
class UnitTensor:
    """One parameter that carries units: its module, attribute name, unit axis, features per unit and block count."""

    module: nn.Module
    name: str
    axis: int
    width: int
    blocks: int
    is_producer: bool

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.module, self.name)

    def per_unit(self) -> int:
        """Parameters of one unit in this tensor (from the shape, so also right for a tensor with no units)."""
        shape = list(self.param.shape)
        del shape[self.axis]
        return math.prod(shape) * self.width * self.blocks

    def flops_per_unit(self, seq_len: int) -> int:
        """FLOPs (2 per multiply-add) one unit costs in this weight on one sequence; 0 for a bias."""
        return 2 * seq_len * self.per_unit() if self.name == "weight" else 0

    def slice(self, kept: torch.Tensor, num_units: int) -> None:
        index = unit_element_index(kept, num_units, self.width, self.blocks).to(self.param.device)
        param = self.param
        sliced = param.detach().index_select(self.axis, index).clone()
        setattr(self.module, self.name, nn.Parameter(sliced, requires_grad=param.requires_grad))

    def scatter_into(self, dense: UnitTensor, kept: torch.Tensor, dense_units: int) -> None:
        """Copy this tensor into the zeroed unit positions ``kept`` (dense numbering) of ``dense``."""
        index = unit_element_index(kept, dense_units, self.width, self.blocks)
        with torch.no_grad():
            dense.param.zero_()
            dense.param.index_copy_(self.axis, index.to(dense.param.device), self.param.detach())


def _param_tensors(module: nn.Module, axis: int, width: int, blocks: int, is_producer: bool) -> list[UnitTensor]:
    tensors = [UnitTensor(module, "weight", axis, width, blocks, is_producer)]
    if is_producer and module.bias is not None:  # a consumer's bias is shared by all units
        tensors.append(UnitTensor(module, "bias", 0, width, blocks, is_producer))
    return tensors


@dataclass
class UnitGroup:
    """One layer's units of one kind, with the modules that carry them."""

    layer: int
    kind: UnitKind
    producers: list[nn.Module]
    consumer: nn.Module
    unit_width: int
    """Features per unit at the consumer's input (what masks expand over)."""
    blocks: int
    attention: nn.Module | None = None
    producer_widths: tuple[int, ...] = ()
    """Features per unit in each producer (default: ``unit_width``); a key/value group is wider in the query."""
    shared: list[nn.Module] = field(default_factory=list)
    """Key/value projections in the ``query`` view: one key/value head per ``queries_per_kv`` query heads, sliced
    away with the last query head of its group, not scored."""
    queries_per_kv: int = 1
    """Query heads per key/value head in this layer now (1 without grouped-query attention)."""
    head_dim: int = 0

    @property
    def num_units(self) -> int:
        return self.consumer.weight.shape[_in_axis(self.consumer)] // self.unit_width

    def width_of(self, module: nn.Module) -> int:
        """Features per unit in ``module`` (a producer or the consumer)."""
        for producer, width in zip(self.producers, self.producer_widths, strict=False):
            if producer is module:
                return width
        return self.unit_width

    def unit_tensors(self) -> list[UnitTensor]:
        """Producer weights and biases (unit-grouped outputs), then the consumer weight (unit-grouped inputs).
        The consumer's bias is shared by all units and is not listed."""
        tensors = []
        for module in self.producers:
            tensors += _param_tensors(module, _out_axis(module), self.width_of(module), self.blocks, True)
        return tensors + _param_tensors(self.consumer, _in_axis(self.consumer), self.unit_width, 1, False)

    def shared_tensors(self) -> list[UnitTensor]:
        """Weights and biases of the ``shared`` key/value projections, one unit per key/value head."""
        return [t for module in self.shared for t in _param_tensors(module, _out_axis(module), self.head_dim, 1, True)]

    @property
    def num_shared(self) -> int:
        """Key/value heads carried as shared tensors (0 when there are none)."""
        if not self.shared:
            return 0
        first = self.shared[0]
        return first.weight.shape[_out_axis(first)] // self.head_dim

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
        return sum(t.per_unit() for t in self.unit_tensors())

    def features(self, module: nn.Module, mask: torch.Tensor) -> torch.Tensor:
        """Which features along ``module``'s unit axis a keep-mask of this group's units leaves (a shared key/value
        head stays while any of its query heads does)."""
        mask = mask.detach().cpu() > 0
        if any(module is shared for shared in self.shared):
            return feature_mask(mask.reshape(self.num_shared, self.queries_per_kv).any(dim=1), self.head_dim)
        return feature_mask(mask, self.width_of(module), 1 if module is self.consumer else self.blocks)

    def query_heads(self, kept: torch.Tensor) -> torch.Tensor:
        """The query heads (this layer's current numbering) that the units ``kept`` carry."""
        if self.kind is UnitKind.NEURONS or self.shared or not self.head_dim:
            return kept
        per_unit = self.unit_width // self.head_dim
        return (kept[:, None] * per_unit + torch.arange(per_unit)).reshape(-1)

    def kept_shared(self, kept: torch.Tensor) -> torch.Tensor:
        """Key/value heads still read by the query heads ``kept``; an error unless every kept group keeps the same
        number of query heads (transformers repeats each key/value head a fixed number of times)."""
        groups, counts = torch.unique(kept // self.queries_per_kv, return_counts=True)
        if counts.numel() and bool((counts != counts[0]).any()):
            raise HfpruneError(
                f"layer {self.layer}: grouped-query attention needs every kept key/value group to keep the same "
                f"number of query heads, got {dict(zip(groups.tolist(), counts.tolist(), strict=True))} "
                "(choose masks with hfprune.pruning.gqa.equal_group_masks)"
            )
        return groups

    def keep(self, kept: torch.Tensor) -> None:
        """Physically remove all units but ``kept`` (sorted local indices) from the weights."""
        n = self.num_units
        if self.shared:
            kept_kv, num_kv = self.kept_shared(kept), self.num_shared
            for t in self.shared_tensors():
                t.slice(kept_kv, num_kv)
        for t in self.unit_tensors():
            t.slice(kept, n)
        for module in {id(m): m for m in [*self.producers, self.consumer, *self.shared]}.values():
            _sync_feature_counts(module)

    def scatter_into(self, dense: UnitGroup, kept: torch.Tensor) -> None:
        """Copy this group's weights into the zeroed unit positions ``kept`` (dense numbering) of ``dense``."""
        for mine, theirs in zip(self.unit_tensors(), dense.unit_tensors(), strict=True):
            mine.scatter_into(theirs, kept, dense.num_units)
        if self.shared:
            kept_kv = torch.unique(kept // dense.queries_per_kv)
            for mine, theirs in zip(self.shared_tensors(), dense.shared_tensors(), strict=True):
                mine.scatter_into(theirs, kept_kv, dense.num_shared)


def _sync_feature_counts(module: nn.Module) -> None:
    if isinstance(module, Conv1D):
        module.nx, module.nf = module.weight.shape
    else:
        module.out_features, module.in_features = module.weight.shape


def _features(module: nn.Module, axis_of: Callable[[nn.Module], int]) -> int:
    return module.weight.shape[axis_of(module)]


def unit_groups(model: PreTrainedModel, kind: UnitKind, granularity: str = "group") -> list[UnitGroup]:
    """Every layer's unit group of ``kind``, in layer order; ``granularity`` picks the view of grouped-query
    attention heads (see the module docstring; it changes nothing for other attention)."""
    spec = get_architecture(model)
    head_dim = spec.head_dim(model.config)
    groups = []
    for index, layer in enumerate(transformer_layers(model)):
        if kind is UnitKind.NEURONS:
            groups.append(UnitGroup(
                layer=index, kind=kind,
                producers=[layer.get_submodule(p) for p in spec.ffn_producers],
                consumer=layer.get_submodule(spec.ffn_consumer),
                unit_width=1, blocks=1,
            ))
            continue
        queries = [layer.get_submodule(p) for p in spec.head_producers]
        consumer = layer.get_submodule(spec.head_consumer)
        kv = [layer.get_submodule(p) for p in spec.kv_producers]
        group = UnitGroup(layer=index, kind=kind, producers=queries, consumer=consumer, unit_width=head_dim,
                          blocks=spec.qkv_blocks, attention=layer.get_submodule(spec.attention), head_dim=head_dim)
        if kv:
            heads, kv_heads = _features(consumer, _in_axis) // head_dim, _features(kv[0], _out_axis) // head_dim
            group.queries_per_kv = heads // kv_heads if kv_heads else 1
            if granularity == "query":
                group.shared = kv
            else:
                width = group.queries_per_kv * head_dim
                group.producers = queries + kv
                group.producer_widths = (width,) * len(queries) + (head_dim,) * len(kv)
                group.unit_width = width
        groups.append(group)
    return groups
