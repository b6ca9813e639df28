"""Sparsity in units, weights, parameters and FLOPs, for a masked or a compacted model, against its dense original.

Weight-level sparsity is counted, not converted into FLOPs: zeros inside dense matrices do not make dense kernels
faster (see scripts/bench_weight_sparsity.py for measured latencies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedModel

from hfprune.pruning.architectures import transformer_layers
from hfprune.pruning.masks import ACTIVE_PRUNERS
from hfprune.pruning.structure import PrunedStructure
from hfprune.pruning.units import UnitGroup, UnitKind, unit_groups
from hfprune.pruning.weight.pruner import weight_counts


@dataclass
class SparsityReport:
    heads_kept: int
    heads_total: int
    neurons_kept: int
    neurons_total: int
    params: int
    params_dense: int
    flops: int
    flops_dense: int
    seq_len: int
    weights_kept: int = 0
    """Nonzero weights of the query/key/value, attention-output and FFN matrices, after head / FFN pruning and
    weight masks (or zeroed weights)."""
    weights_total: int = 0
    """Weights of those matrices left by head / FFN pruning."""

    @property
    def nonzero_params(self) -> int:
        """Parameters left by head / FFN pruning, less the weights zeroed by weight pruning: what a compressed
        (values + bitmask) save must store values for."""
        return self.params - (self.weights_total - self.weights_kept)

    @property
    def weight_sparsity(self) -> float:
        return 1 - self.weights_kept / self.weights_total if self.weights_total else 0.0

    @property
    def nonzero_param_sparsity(self) -> float:
        return 1 - self.nonzero_params / self.params_dense

    @property
    def head_sparsity(self) -> float:
        return 1 - self.heads_kept / self.heads_total

    @property
    def ffn_sparsity(self) -> float:
        return 1 - self.neurons_kept / self.neurons_total

    @property
    def param_sparsity(self) -> float:
        return 1 - self.params / self.params_dense

    @property
    def flops_sparsity(self) -> float:
        return 1 - self.flops / self.flops_dense

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "head_sparsity": self.head_sparsity, "ffn_sparsity": self.ffn_sparsity,
                "param_sparsity": self.param_sparsity, "flops_sparsity": self.flops_sparsity,
                "weight_sparsity": self.weight_sparsity, "nonzero_params": self.nonzero_params,
                "nonzero_param_sparsity": self.nonzero_param_sparsity}


@dataclass(frozen=True)
class _LayerCosts:
    """Parameters and FLOPs that one query head, one key/value head (grouped-query attention only; else 0) and one
    FFN neuron of a layer cost, read off its weights' shapes: the same code counts every architecture."""

    head_params: int
    kv_params: int
    neuron_params: int
    head_flops: int
    kv_flops: int
    neuron_flops: int

    @classmethod
    def of(cls, heads: UnitGroup, neurons: UnitGroup, seq_len: int) -> _LayerCosts:
        # query heads in the query view: q rows (k/v rows too where they have as many heads) and output columns
        head_tensors, kv_tensors = heads.unit_tensors(), heads.shared_tensors()
        # attention scores (q k^T) and context (p v): seq_len^2 * head_dim multiply-adds each, per query head
        attention = 2 * 2 * seq_len * seq_len * heads.head_dim
        return cls(
            head_params=sum(t.per_unit() for t in head_tensors),
            kv_params=sum(t.per_unit() for t in kv_tensors),
            neuron_params=sum(t.per_unit() for t in neurons.unit_tensors()),
            head_flops=sum(t.flops_per_unit(seq_len) for t in head_tensors) + attention,
            kv_flops=sum(t.flops_per_unit(seq_len) for t in kv_tensors),
            neuron_flops=sum(t.flops_per_unit(seq_len) for t in neurons.unit_tensors()),
        )

    def params(self, heads: int, kv_heads: int, neurons: int) -> int:
        return heads * self.head_params + kv_heads * self.kv_params + neurons * self.neuron_params

    def flops(self, heads: int, kv_heads: int, neurons: int) -> int:
        """FLOPs (2 per multiply-add) of the layer's prunable matrices and attention on one sequence. Embeddings,
        norms and task heads are left out: pruning does not change them."""
        return heads * self.head_flops + kv_heads * self.kv_flops + neurons * self.neuron_flops


def model_flops(model: PreTrainedModel, seq_len: int = 128) -> int:
    """FLOPs of ``model``'s transformer layers as its weights are now (masks ignored), on one sequence: works for
    any model of a supported architecture, whoever pruned it, as long as whole heads and neurons were removed."""
    total = 0
    for heads, neurons in zip(unit_groups(model, UnitKind.HEADS, "query"), unit_groups(model, UnitKind.NEURONS),
                              strict=True):
        total += _LayerCosts.of(heads, neurons, seq_len).flops(heads.num_units, heads.num_shared, neurons.num_units)
    return total


def _kept_units(pruner: object | None, kind: UnitKind, layer: int, group: UnitGroup) -> torch.Tensor:
    """Indices (the layer's current numbering) of the units of ``group`` the attached pruner has not masked; query
    heads for heads, whatever view the pruner masks them in."""
    masks = getattr(pruner, "masks", {})
    if kind not in masks:
        return torch.arange(group.num_units)
    mask_group = pruner.groups[kind][layer]
    kept = torch.nonzero(masks[kind][layer].detach().cpu() > 0).flatten()
    return mask_group.query_heads(kept) if kind is UnitKind.HEADS else kept


def sparsity_report(model: PreTrainedModel, seq_len: int = 128) -> SparsityReport:
    """Units, weights, parameters and FLOPs kept, counting masked units and weights of attached pruners as removed.
    FLOPs count only removed heads and neurons (dense kernels do not skip zero weights). Heads are query heads; a
    key/value head of grouped-query attention counts as removed once no query head reads it. Removed (or masked)
    layers (``layer_sparsity``) count as dense layers whose every unit and parameter is gone."""
    structure = PrunedStructure.of(model)
    dense_kv = structure.dense_num_kv_heads or 0
    pruner = ACTIVE_PRUNERS.get(model)
    layer_mask = getattr(getattr(pruner, "layers", None), "mask", None)
    heads_kept = neurons_kept = compacted_params = masked_params = flops = flops_dense = 0
    layers = unit_groups(model, UnitKind.HEADS, "query")
    for heads, neurons in zip(layers, unit_groups(model, UnitKind.NEURONS), strict=True):
        costs = _LayerCosts.of(heads, neurons, seq_len)
        kept_heads = _kept_units(pruner, UnitKind.HEADS, heads.layer, heads)
        kept_kv = int(torch.unique(kept_heads // heads.queries_per_kv).numel()) if heads.shared else 0
        kept_neurons = int(_kept_units(pruner, UnitKind.NEURONS, neurons.layer, neurons).numel())
        now = (heads.num_units, heads.num_shared, neurons.num_units)
        masked_layer = layer_mask is not None and not bool(layer_mask[heads.layer] > 0)
        kept = (0, 0, 0) if masked_layer else (int(kept_heads.numel()), kept_kv, kept_neurons)
        dense = (structure.dense_num_heads, dense_kv if heads.shared else 0, structure.dense_ffn_size)
        compacted_params += costs.params(*dense) - costs.params(*now)
        masked_params += costs.params(*now) - costs.params(*kept)
        if masked_layer:  # its norms and shared biases go with it
            layer_params = sum(p.numel() for p in transformer_layers(model)[heads.layer].parameters())
            masked_params += layer_params - costs.params(*now)
        flops += costs.flops(*kept)
        flops_dense += costs.flops(*dense)
        if heads.layer == 0:  # one dense layer's parameters and FLOPs, for the layers removed whole
            layer_params = sum(p.numel() for p in transformer_layers(model)[0].parameters())
            dense_layer = (layer_params + costs.params(*dense) - costs.params(*now), costs.flops(*dense))
        heads_kept += kept[0]
        neurons_kept += kept[2]
    params = sum(p.numel() for p in model.parameters())
    weights_kept, weights_total = weight_counts(model)
    dense_layers = structure.dense_num_layers or len(layers)
    removed = dense_layers - len(layers)
    return SparsityReport(
        heads_kept=heads_kept, heads_total=dense_layers * structure.dense_num_heads,
        neurons_kept=neurons_kept, neurons_total=dense_layers * structure.dense_ffn_size,
        params=params - masked_params, params_dense=params + compacted_params + removed * dense_layer[0],
        flops=flops, flops_dense=flops_dense + removed * dense_layer[1],
        seq_len=seq_len, weights_kept=weights_kept, weights_total=weights_total,
    )


def training_log(model: PreTrainedModel, targets: dict[str, float], seq_len: int = 128) -> dict[str, float]:
    """``pruning/*`` values for the Trainer's log dict: the head / FFN-neuron / weight / FLOPs sparsity the model
    has now (masks of the attached pruner counted as removed) and the schedule's ``targets`` (``head``, ``ffn``,
    ``weight``, from ``StructuredPruner.scheduled_sparsities``; a latency budget ``latency_ms`` is logged as
    ``pruning/target_latency_ms``)."""
    report = sparsity_report(model, seq_len)
    values = {"head_sparsity": report.head_sparsity, "ffn_sparsity": report.ffn_sparsity,
              "weight_sparsity": report.weight_sparsity, "flops_sparsity": report.flops_sparsity,
              **{f"target_{name}" if name.endswith("_ms") else f"target_{name}_sparsity": value
                 for name, value in targets.items()}}
    return {f"pruning/{name}": float(value) for name, value in values.items()}
