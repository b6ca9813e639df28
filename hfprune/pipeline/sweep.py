"""``hfprune sweep``: one recipe at several sparsity levels, resumable, with one report.

The dense model is trained (and audited) once, in ``dense/``; each level prunes a copy of it into
``levels/sparsity-<level>/``, a stage whose ``stage.json`` done-marker is written last, atomically (see
:mod:`hfprune.pipeline.runner`). A level whose marker exists with the same settings is read back, never recomputed,
so an interrupted sweep resumes where it stopped and adding a level costs one level. The report
(``sweep/report.md``, ``sweep/report.json`` and ``sweep/plots/*.png``: accuracy, latency, attack success rate and
membership-inference AUC against sparsity, the dense model as the reference row) is rebuilt from the markers.

Families mode (``--families structured,weight,combined --param-sparsities 0.5,0.9``, or a non-empty
``sweep.families`` in the recipe when neither ``--sparsities`` nor ``--apply-to`` is given) compares pruning
families at equal parameter count instead, in ``levels/<family>-<p>/``; see :mod:`hfprune.pipeline.families`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.errors import ConfigError
from hfprune.pipeline.results import STAGE_FILE, Level, StageResult
from hfprune.pipeline.runner import RecipeRunner, write_control_records
from hfprune.recipes.schema import SWEEP_FIELDS, check_sparsities
from hfprune.utils import distributed
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

LEVELS_DIR = "levels"
REPORT_DIR = "sweep"


def level_name(value: float) -> str:
    """The folder of a level, relative to the run folder: ``levels/sparsity-0.50``."""
    return f"{LEVELS_DIR}/sparsity-{value:.2f}"


def parse_sparsities(text: str, key: str = "--sparsities") -> list[float]:
    """``"0,0.3,0.5"`` -> [0.0, 0.3, 0.5]; each level must be a number in [0, 1), all distinct."""
    values = []
    for i, part in enumerate(p.strip() for p in text.split(",")):
        try:
            values.append(float(part))
        except ValueError:
            raise ConfigError(f"{key}[{i}]: expected a number in [0, 1), got {part!r}") from None
    check_sparsities(key, values)
    return values


def sweep_levels(recipe: Recipe, sparsities: list[float] | None = None,
                 apply_to: list[str] | None = None) -> list[Level]:
    """One level per sparsity, setting the ``apply_to`` pruning fields (default: the recipe's sweep section)."""
    values = list(recipe.sweep.sparsities if sparsities is None else sparsities)
    fields = list(recipe.sweep.apply_to if apply_to is None else apply_to)
    check_sparsities("--sparsities", values)
    for name in fields:
        if name not in SWEEP_FIELDS:
            raise ConfigError(f"--apply-to: expected names from {list(SWEEP_FIELDS)}, got {name!r}")
    if len({f"{v:.2f}" for v in values}) != len(values):
        raise ConfigError(f"--sparsities: expected levels distinct to two decimals, got {values}")
    if recipe.audits.control and 0 not in values:
        values.append(0.0)  # the control: the sweep's level that prunes nothing
    levels = []
    for value in sorted(values):
        try:
            pruning = dataclasses.replace(recipe.pruning, **{name: value for name in fields})
        except ConfigError as exc:
            raise ConfigError(f"--sparsities ({value}): {exc}") from None
        levels.append(Level(level_name(value), value, pruning))
    return levels


def plan_levels(recipe: Recipe, sparsities: list[float] | None = None, apply_to: list[str] | None = None,
                families: list[str] | None = None,
                param_sparsities: list[float] | None = None) -> tuple[list[Level], bool]:
    """The sweep's levels and whether they are families (see the module docstring for which mode applies)."""
    from hfprune.pipeline.families import family_levels

    if families is not None and (sparsities is not None or apply_to is not None):
        raise ConfigError("--families: compares families at --param-sparsities; expected no --sparsities or "
                          "--apply-to with it")
    if param_sparsities is not None and families is None and not recipe.sweep.families:
        raise ConfigError("--param-sparsities: only with --families (or a recipe with sweep.families)")
    use_families = families is not None or (bool(recipe.sweep.families) and sparsities is None and apply_to is None)
    if use_families:
        if recipe.audits.control:
            raise ConfigError("audits.control: a families sweep has no control level; expected a sparsity sweep "
                              "(--sparsities) or audits.control false")
        return family_levels(recipe, families, param_sparsities), True
    return sweep_levels(recipe, sparsities, apply_to), False


def sweep_title(recipe: Recipe) -> str:
    from hfprune.pipeline.report import model_display_name

    return f"hfprune sweep: {model_display_name(recipe)} on {recipe.data.dataset}"


@dataclass
class SweepResult:
    """The dense reference, the level results and where the report went."""

    dense: StageResult
    levels: list[StageResult]
    report_dir: Path
    computed: list[str]
    efficiency: dict[str, dict] | None = None
    """Families mode: level name -> its efficiency record."""


def run_sweep(
    recipe: Recipe, sparsities: list[float] | None = None, apply_to: list[str] | None = None,
    overwrite: bool = False, families: list[str] | None = None, param_sparsities: list[float] | None = None,
) -> SweepResult:
    """Run (or resume) every level and write the sweep report; see the module docstring."""
    from hfprune.pipeline.report import RunReport
    from hfprune.pipeline.seed_layout import check_layout, refuse_several_seeds

    refuse_several_seeds(recipe, "run_sweep")
    check_layout(recipe)
    levels, use_families = plan_levels(recipe, sparsities, apply_to, families, param_sparsities)
    root = recipe.output_dir
    finished = set() if overwrite else {level.name for level in levels if (root / level.name / STAGE_FILE).is_file()}
    if finished:
        logger.info("resuming: %d of %d levels already finished (%s)", len(finished), len(levels),
                    ", ".join(sorted(finished)))
    runner = RecipeRunner(recipe, overwrite)
    report_dir = root / REPORT_DIR
    with runner.locked(levels):  # the report too is written under the folder's lock
        dense, results = runner.run(levels)
        title = sweep_title(recipe)

        def report() -> dict[str, dict] | None:  # the main process's (measured and written once, under a launch)
            if not use_families:
                run_report = RunReport(recipe, dense, results, title=title)
                run_report.save(report_dir)
                write_control_records(root, levels, run_report)
                return None
            from hfprune.pipeline.families_report import save_families_report

            return save_families_report(runner, dense, results, report_dir, title)

        efficiency = distributed.main_only(report)
    computed = [level.name for level in levels if level.name not in finished]
    return SweepResult(dense, results, report_dir, computed, efficiency)
