"""Pruning families compared at equal parameter count (``hfprune sweep --families``).

The families themselves (what a recipe may name) are in :mod:`hfprune.recipes.families_spec`; this module turns
them into sweep levels and checks the levels removed equal parameter counts.

Parameter sparsity p = the fraction of the prunable encoder-layer weights removed: the weight entries of every
layer's attention query/key/value/output and FFN in/out matrices that the engine knows (the architecture table's
``prunable_matrices``; biases, embeddings, norms and the task head are not counted). A family maps p to pruning
settings that remove that fraction:

* ``structured``: head_sparsity = ffn_sparsity = p (whole heads and FFN neurons, physically removed);
* ``weight``: weight_sparsity = p with the recipe's ``pruning.weight_method`` (default ``movement``: the same
  gradient-based scores as the structured family, and the stronger of movement and magnitude when a model is
  fine-tuned while pruned, Sanh et al. 2020);
* ``combined``: head_sparsity = ffn_sparsity = s and weight_sparsity = w with (1 - s)(1 - w) = 1 - p; by default
  s = w = 1 - sqrt(1 - p). A fixed-pattern method (2:4) fixes w, and then s = 1 - (1 - p) / (1 - w).

Each (family, p) is a sweep level in ``levels/<family>-<p>/`` with the usual done-marker resumption. After the
levels, each gets ``efficiency.json`` (parameters, bytes on disk, dense- and sparse-kernel latency, see
:mod:`hfprune.pipeline.efficiency`), also computed once and reused. The achieved remaining fraction of each level is
read back from its SparsityReport (nonzero prunable weights / the dense model's prunable weights) and checked to be
equal across families within ``EQUAL_TOLERANCE``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.pipeline.results import DENSE_STAGE, Level
from hfprune.recipes.families_spec import FAMILIES, check_families
from hfprune.utils.io import atomic_write_json
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.pipeline.results import StageResult
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

EQUAL_TOLERANCE = 0.01  # remaining fractions of one level may differ by at most 1 percentage point across families


def family_level_name(family: str, p: float) -> str:
    """The folder of a level, relative to the run folder: ``levels/combined-0.50``."""
    return f"levels/{family}-{p:.2f}"


def family_of(stage_name: str) -> str:
    """The family of a level's stage name (``combined-0.50`` -> ``combined``)."""
    return re.sub(r"-[0-9.]+$", "", Path(stage_name).name)


def family_levels(recipe: Recipe, families: list[str] | None = None,
                  param_sparsities: list[float] | None = None) -> list[Level]:
    """One level per (parameter sparsity, family); defaults from the recipe's sweep section."""
    from hfprune.recipes.schema import check_sparsities

    names = list(recipe.sweep.families if families is None else families)
    values = list(recipe.sweep.param_sparsities if param_sparsities is None else param_sparsities)
    if not names:
        raise ConfigError("--families: expected at least one of " + str(sorted(FAMILIES)))
    check_families("--families", names)
    check_sparsities("--param-sparsities", values)
    if len({f"{v:.2f}" for v in values}) != len(values) or 0.0 in values:
        raise ConfigError(f"--param-sparsities: expected levels in (0, 1), distinct to two decimals, got {values}")
    levels = []
    for p in sorted(values):  # parameter-sparsity-major: an interrupted run has every family at the lower levels
        for name in names:
            fields = FAMILIES[name](recipe.pruning, p)
            try:
                pruning = dataclasses.replace(recipe.pruning, **fields)
            except ConfigError as exc:
                raise ConfigError(f"--families ({name} at parameter sparsity {p}): {exc}") from None
            levels.append(Level(family_level_name(name, p), p, pruning))
    return levels


# ---------------------------------------------------------------------------------------------- remaining weights
@dataclass(frozen=True)
class Remaining:
    """The achieved share of the dense model's prunable weights a level keeps (nonzero)."""

    family: str
    target: float
    weights_kept: int
    weights_dense: int

    @property
    def fraction(self) -> float:
        return self.weights_kept / self.weights_dense

    @property
    def achieved_sparsity(self) -> float:
        return 1 - self.fraction


def remaining(dense: StageResult, level: StageResult) -> Remaining:
    """From the stages' SparsityReports: nonzero prunable weights of the level over the dense model's."""
    return Remaining(family_of(level.name), float(level.level or 0.0), int(level.sparsity["weights_kept"]),
                     int(dense.sparsity["weights_total"]))


def equal_parameter_check(dense: StageResult, levels: list[StageResult],
                          tolerance: float = EQUAL_TOLERANCE) -> dict[str, dict[str, Any]]:
    """Per target p: each family's remaining fraction, the spread (max - min) and whether it is within tolerance."""
    by_target: dict[str, dict[str, Any]] = {}
    for level in levels:
        r = remaining(dense, level)
        entry = by_target.setdefault(f"{r.target:.2f}", {"remaining": {}, "tolerance": tolerance})
        entry["remaining"][r.family] = r.fraction
    for key, entry in by_target.items():
        fractions = list(entry["remaining"].values())
        entry["spread"] = max(fractions) - min(fractions)
        entry["equal"] = entry["spread"] <= tolerance
        if not entry["equal"]:
            logger.warning("parameter sparsity %s: remaining prunable weights differ by %.2f%% across families "
                           "(%s), more than the %.1f%% tolerance", key, 100 * entry["spread"],
                           ", ".join(f"{k} {v:.4f}" for k, v in entry["remaining"].items()), 100 * tolerance)
    return by_target


# ------------------------------------------------------------------------------------------------------ efficiency
def efficiency_stage(runner: Any, level: StageResult, dense: StageResult,
                     rounds: dict[int, int] | None = None) -> dict[str, Any]:
    """The level's ``efficiency.json``: read back when it was computed for this stage (same fingerprint), else
    measured (see :mod:`hfprune.pipeline.efficiency`) and written atomically."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.pipeline.efficiency import EFFICIENCY_FILE, measure_efficiency

    stage_dir = runner.root / family_level_name(family_of(level.name), float(level.level))
    path = stage_dir / EFFICIENCY_FILE
    if path.is_file() and not runner.overwrite:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("stage_fingerprint") == level.fingerprint:
            return record
    runner.step(f"{level.name}: size on disk and CPU latency, dense vs sparse kernel, interleaved")
    # size and CPU kernels (dense and CSR): measured on the CPU whatever training.device is
    pruned = load_model_dir(level.model_path(stage_dir), device="cpu").model
    dense_model = runner.dense_model(dense).model
    if next(dense_model.parameters()).device.type != "cpu":
        dense_model = copy.deepcopy(dense_model).cpu()
    record = {"stage_fingerprint": level.fingerprint,
              **measure_efficiency(dense_model, dense.model_path(runner.root / DENSE_STAGE), pruned,
                                   level.model_path(stage_dir), rounds)}
    atomic_write_json(path, record)
    return record


def families_efficiency(runner: Any, dense: StageResult, levels: list[StageResult],
                        rounds: dict[int, int] | None = None) -> dict[str, dict[str, Any]]:
    """``efficiency_stage`` of every level (stage name -> record), on the recipe's CPU threads."""
    from hfprune.data.paths import data_dir_env
    from hfprune.training import torch_threads

    with data_dir_env(runner.recipe.data.data_dir), torch_threads(runner.recipe.training.threads):
        return {level.name: efficiency_stage(runner, level, dense, rounds) for level in levels}
