"""hfprune: structured pruning for Hugging Face Transformers, and an audit of what pruning did to security.

Public names are imported lazily so that ``hfprune --help`` and ``import hfprune`` stay fast.
"""

from __future__ import annotations

from hfprune.utils.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "PruningConfig": "hfprune.pruning.config",
    "MovementPruningCallback": "hfprune.pruning.callback",
    "add_pruning_callback": "hfprune.pruning.callback",
    "StructuredPruner": "hfprune.pruning.pruner",
    "compact": "hfprune.pruning.compaction",
    "load_pruned": "hfprune.pruning.serialization",
    "save_pruned": "hfprune.pruning.serialization",
    "export_dense": "hfprune.pruning.serialization",
    "save_compressed": "hfprune.pruning.serialization",
    "load_compressed": "hfprune.pruning.serialization",
    "prune": "hfprune.pruning.oneshot",
    "sparsity_report": "hfprune.pruning.stats",
    "latency_report": "hfprune.pruning.latency_report",
    "DistillationTrainer": "hfprune.distill.trainer",
    "DistillationArguments": "hfprune.distill.trainer",
    "distillation_loss": "hfprune.distill.loss",
    "resolve_model": "hfprune.models",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__ = lazy_exports(__name__, _EXPORTS)
