"""Structured pruning of attention heads, FFN neurons and whole layers: architectures table, unit views, scorers,
schedule, masks, the pruner that ties them together, compaction, serialisation, the Trainer callback and one-shot
pruning; weight-level pruning of the same matrices lives in ``hfprune.pruning.weight``."""

from hfprune.utils.lazy import lazy_exports

_EXPORTS = {
    "ARCHITECTURES": "hfprune.pruning.architectures",
    "ArchitectureSpec": "hfprune.pruning.architectures",
    "get_architecture": "hfprune.pruning.architectures",
    "MovementPruningCallback": "hfprune.pruning.callback",
    "add_pruning_callback": "hfprune.pruning.callback",
    "load_checkpoint_masked": "hfprune.pruning.checkpoints",
    "compact": "hfprune.pruning.compaction",
    "PruningConfig": "hfprune.pruning.config",
    "LatencyReport": "hfprune.pruning.latency_report",
    "latency_report": "hfprune.pruning.latency_report",
    "LatencyTable": "hfprune.pruning.latency_table",
    "remove_layers": "hfprune.pruning.layers",
    "prune": "hfprune.pruning.oneshot",
    "StructuredPruner": "hfprune.pruning.pruner",
    "cubic_sparsity": "hfprune.pruning.schedule",
    "SCORERS": "hfprune.pruning.scoring",
    "register_scorer": "hfprune.pruning.scoring",
    "export_dense": "hfprune.pruning.serialization",
    "load_compressed": "hfprune.pruning.serialization",
    "load_pruned": "hfprune.pruning.serialization",
    "save_compressed": "hfprune.pruning.serialization",
    "save_pruned": "hfprune.pruning.serialization",
    "SparsityReport": "hfprune.pruning.stats",
    "model_flops": "hfprune.pruning.stats",
    "sparsity_report": "hfprune.pruning.stats",
    "PrunedStructure": "hfprune.pruning.structure",
    "HEAD_GRANULARITIES": "hfprune.pruning.units",
    "UnitKind": "hfprune.pruning.units",
    "WEIGHT_METHODS": "hfprune.pruning.weight.methods",
    "WeightPruner": "hfprune.pruning.weight.pruner",
    "register_weight_method": "hfprune.pruning.weight.methods",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
