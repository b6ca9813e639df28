"""Structured pruning of attention heads and FFN neurons: architectures table, unit views, scorers, schedule,
masks, the pruner that ties them together, compaction, serialisation, the Trainer callback and one-shot pruning."""

from hfprune.pruning.architectures import ARCHITECTURES, ArchitectureSpec, get_architecture
from hfprune.pruning.callback import MovementPruningCallback
from hfprune.pruning.compaction import compact
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.oneshot import prune
from hfprune.pruning.pruner import StructuredPruner
from hfprune.pruning.schedule import cubic_sparsity
from hfprune.pruning.scoring import SCORERS, register_scorer
from hfprune.pruning.serialization import export_dense, load_pruned, save_pruned
from hfprune.pruning.stats import SparsityReport, sparsity_report
from hfprune.pruning.structure import PrunedStructure
from hfprune.pruning.units import UnitKind

__all__ = [
    "ARCHITECTURES", "ArchitectureSpec", "MovementPruningCallback", "PrunedStructure", "PruningConfig", "SCORERS",
    "SparsityReport", "StructuredPruner", "UnitKind", "compact", "cubic_sparsity", "export_dense", "get_architecture",
    "load_pruned", "prune", "register_scorer", "save_pruned", "sparsity_report",
]
