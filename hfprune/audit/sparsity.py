"""How an audit measures a model's sparsity: the named measures (the x axis of every audit table and plot), and one
function that measures them. An architecture hfprune cannot measure is an error naming it, never a silent 0."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hfprune.errors import ConfigError, UnsupportedModelError

if TYPE_CHECKING:
    import torch

    from hfprune.pruning.stats import SparsityReport

# measure name -> SparsityReport property
SPARSITY_MEASURES: dict[str, Callable[[SparsityReport], float]] = {
    "params": lambda report: report.param_sparsity,
    "flops": lambda report: report.flops_sparsity,
    "heads": lambda report: report.head_sparsity,
    "ffn": lambda report: report.ffn_sparsity,
}
# measure name -> what its axis counts ("sparsity (fraction of <this> removed)")
SPARSITY_AXIS = {"params": "parameters", "flops": "encoder FLOPs", "heads": "attention heads", "ffn": "FFN neurons"}


def measure_sparsity(model: torch.nn.Module, measure: str, name: str, key: str = "sparsity") -> float:
    """The ``measure`` sparsity of ``model`` (clipped at 0), from :func:`hfprune.sparsity_report`; an error names
    ``key`` (the argument that would have given the sparsity) and the model's ``name``."""
    if measure not in SPARSITY_MEASURES:
        raise ConfigError(f"sparsity_measure: expected one of {sorted(SPARSITY_MEASURES)}, got {measure!r}")
    from hfprune.pruning.stats import sparsity_report

    try:
        report = sparsity_report(model)
    except UnsupportedModelError as exc:
        raise ConfigError(f"{key} ({name}): cannot be measured for this architecture ({exc}); pass "
                          "sparsity explicitly") from exc
    return max(0.0, float(SPARSITY_MEASURES[measure](report)))
