"""``hfprune sweep --families ... --seeds 0 1 2``: the families sweep (:mod:`hfprune.pipeline.families`) repeated
once per seed, then one report over the seeds.

Each seed is a complete one-seed families sweep in ``<output.dir>/seed-<s>/`` (``dense/``, ``levels/<family>-<p>/``
with their ``efficiency.json``, and that seed's own families report in ``seed-<s>/sweep/``), run by
:func:`hfprune.pipeline.seeds.run_seeds`: the same folders, fingerprints and files a plain
``hfprune sweep --families`` with ``training.seed = s``, ``training.split_seed`` = the run's split seed and
``output.dir = <output.dir>/seed-<s>`` makes, so seeds run that way (in parallel, say) are resumed, not retrained.
Each (stage, seed) and each level's efficiency record is reused when finished with the same settings. The report over
the seeds (:mod:`hfprune.pipeline.families_seeds_report`) goes to ``<output.dir>/sweep/``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hfprune.pipeline.results import STAGE_FILE, Level

if TYPE_CHECKING:
    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.seeds import SeedRuns
    from hfprune.recipes.schema import Recipe


def run_family_seeds(recipe: Recipe, levels: list[Level], overwrite: bool = False) -> SeedRuns:
    """Run (or resume) every seed's families sweep and write the report over the seeds into ``<output.dir>/sweep``;
    ``SeedRuns.extras`` holds each seed's efficiency records (level name -> record)."""
    from hfprune.pipeline.families_report import FAMILIES_TITLE, save_families_report
    from hfprune.pipeline.families_seeds_report import FamiliesSeedsReport
    from hfprune.pipeline.seeds import run_seeds
    from hfprune.pipeline.sweep import REPORT_DIR, sweep_title

    title = sweep_title(recipe)

    def one_seed(runner: Any, dense: StageResult, seed_levels: list[StageResult]) -> dict[str, dict[str, Any]]:
        return save_families_report(runner, dense, seed_levels, runner.root / REPORT_DIR, title)

    return run_seeds(recipe, levels, recipe.output_dir / REPORT_DIR, title + FAMILIES_TITLE, overwrite,
                     after_seed=one_seed, report_type=FamiliesSeedsReport)


def reusable_efficiency(recipe: Recipe, levels: list[Level]) -> tuple[int, int]:
    """(efficiency records that a run would read back, levels of all seeds): a level's ``efficiency.json`` is reused
    when its stage is finished and the record names that stage's fingerprint (as ``efficiency_stage`` checks)."""
    from hfprune.pipeline.efficiency import EFFICIENCY_FILE
    from hfprune.pipeline.seed_layout import seed_dir

    found = 0
    for seed in recipe.training.run_seeds:
        for level in levels:
            stage = recipe.output_dir / seed_dir(seed) / level.name
            if (stage / STAGE_FILE).is_file() and (stage / EFFICIENCY_FILE).is_file():
                marker = json.loads((stage / STAGE_FILE).read_text(encoding="utf-8"))
                record = json.loads((stage / EFFICIENCY_FILE).read_text(encoding="utf-8"))
                found += record.get("stage_fingerprint") == marker.get("fingerprint")
    return found, len(recipe.training.run_seeds) * len(levels)
