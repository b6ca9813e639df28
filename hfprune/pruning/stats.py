"""Sparsity in units, weights, parameters and FLOPs, for a masked or a compacted model, against its dense original.

Weight-level sparsity is counted, not converted into FLOPs: zeros inside dense matrices do not make dense kernels
faster (see scripts/bench_weight_sparsity.py for measured latencies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import PreTrainedModel

from hfprune.pruning.architectures import get_architecture
from hfprune.pruning.masks import ACTIVE_PRUNERS
from hfprune.pruning.structure import PrunedStructure
from hfprune.pruning.units import UnitKind, unit_groups
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


def layer_flops(hidden: int, heads: int, head_dim: int, ffn: int, seq_len: int) -> int:
    """FLOPs (2 per multiply-add) of one transformer layer on one sequence: Q/K/V/O projections, attention
    scores and context, FFN. Embeddings, norms and task heads are left out: pruning does not change them."""
    width = heads * head_dim
    projections = 2 * seq_len * hidden * width * 4
    attention = 2 * 2 * seq_len * seq_len * width
    feed_forward = 2 * 2 * seq_len * hidden * ffn
    return projections + attention + feed_forward


def sparsity_report(model: PreTrainedModel, seq_len: int = 128) -> SparsityReport:
    """Units, weights, parameters and FLOPs kept, counting masked units and weights of attached pruners as removed.
    FLOPs count only removed heads and neurons (dense kernels do not skip zero weights)."""
    spec = get_architecture(model)
    config = model.config
    hidden, head_dim = int(getattr(config, spec.hidden_size_field)), spec.head_dim(config)
    dense = PrunedStructure.dense(model)
    pruner = ACTIVE_PRUNERS.get(model)
    kept: dict[UnitKind, list[int]] = {}
    compacted_params = masked_params = 0
    for kind, dense_count in ((UnitKind.HEADS, dense.dense_num_heads), (UnitKind.NEURONS, dense.dense_ffn_size)):
        kept[kind] = []
        for group in unit_groups(model, kind):
            masked = 0
            if pruner is not None and kind in pruner.masks:
                masked = int((pruner.masks[kind][group.layer] == 0).sum())
            kept[kind].append(group.num_units - masked)
            compacted_params += (dense_count - group.num_units) * group.params_per_unit()
            masked_params += masked * group.params_per_unit()
    params = sum(p.numel() for p in model.parameters())
    layers = len(kept[UnitKind.HEADS])
    weights_kept, weights_total = weight_counts(model)
    flops = sum(layer_flops(hidden, h, head_dim, f, seq_len)
                for h, f in zip(kept[UnitKind.HEADS], kept[UnitKind.NEURONS], strict=True))
    return SparsityReport(
        heads_kept=sum(kept[UnitKind.HEADS]), heads_total=layers * dense.dense_num_heads,
        neurons_kept=sum(kept[UnitKind.NEURONS]), neurons_total=layers * dense.dense_ffn_size,
        params=params - masked_params, params_dense=params + compacted_params,
        flops=flops, flops_dense=layers * layer_flops(hidden, dense.dense_num_heads, head_dim, dense.dense_ffn_size,
                                                      seq_len),
        seq_len=seq_len, weights_kept=weights_kept, weights_total=weights_total,
    )
