"""hfprune: structured pruning for Hugging Face Transformers, and an audit of what pruning did to security.

Public names are imported lazily so that ``hfprune --help`` and ``import hfprune`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "PruningConfig": "hfprune.pruning.config",
    "MovementPruningCallback": "hfprune.pruning.callback",
    "StructuredPruner": "hfprune.pruning.pruner",
    "compact": "hfprune.pruning.compaction",
    "load_pruned": "hfprune.pruning.serialization",
    "save_pruned": "hfprune.pruning.serialization",
    "export_dense": "hfprune.pruning.serialization",
    "prune": "hfprune.pruning.oneshot",
    "sparsity_report": "hfprune.pruning.stats",
    "DistillationTrainer": "hfprune.distill.trainer",
    "DistillationArguments": "hfprune.distill.trainer",
    "distillation_loss": "hfprune.distill.loss",
    "resolve_model": "hfprune.models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hfprune' has no attribute {name!r}")
