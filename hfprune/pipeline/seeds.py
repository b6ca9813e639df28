"""``training.seeds`` (``--seeds 0 1 2``): the dense model and every pruned level of ``hfprune run`` or
``hfprune sweep``, repeated once per seed, then one report over the seeds.

Each seed is a complete one-seed run in ``<output.dir>/seed-<s>/`` (its own ``recipe.json``, ``dense/`` and
``pruned/`` or ``levels/...``), run by :class:`~hfprune.pipeline.runner.RecipeRunner` with ``training.seed = s``:
the seed drives initialisation, pruning and data order. ``training.split_seed`` (default: the first seed) is the
same in every seed, so the member split, the evaluation sample and the canaries do not change, and the attack sample
follows ``audits.robustness.seed``: every seed's models are scored on the same examples, which the pooled paired
tests need. Each (stage, seed) is resumable on its own through the stages' fingerprints and done-markers; a new seed
costs one seed. The report (:mod:`hfprune.pipeline.seeds_report`) goes where the one-seed report goes.

One seed (the default) never comes here: the folders, results and report stay those of a plain run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.pipeline.results import DENSE_STAGE, STAGE_FILE, Level, StageResult
from hfprune.pipeline.seed_layout import check_layout, seed_dir
from hfprune.utils import distributed
from hfprune.utils.io import atomic_write_json
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)


def seed_recipe(recipe: Recipe, seed: int) -> Recipe:
    """The one-seed recipe of ``seed``: training.seed = seed, the run's split seed, output in ``seed-<s>/``."""
    training = dataclasses.replace(recipe.training, seed=seed, seeds=None,
                                   split_seed=recipe.training.member_split_seed)
    output = dataclasses.replace(recipe.output, dir=str(recipe.output_dir / seed_dir(seed)))
    return dataclasses.replace(recipe, training=training, output=output)


@dataclass
class SeedRuns:
    """Every seed's stage results (``dense[i]``, ``levels[i][j]``: seed ``seeds[i]``, level ``j``) and the report."""

    recipe: Recipe
    seeds: list[int]
    level_dirs: list[str]
    dense: list[StageResult]
    levels: list[list[StageResult]]
    report_dir: Path
    computed: list[str]


def seed_runners(recipe: Recipe, overwrite: bool = False) -> list[RecipeRunner]:
    """One runner per seed, once the run folder's layout is checked."""
    from hfprune.pipeline.preflight import RECIPE_FILE
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.utils.lock import LOCK_FILE

    check_layout(recipe)
    root = recipe.output_dir
    if root.is_dir() and any(p.name != LOCK_FILE for p in root.iterdir()) and not (root / RECIPE_FILE).is_file():
        raise ConfigError(f"output.dir: {root} is not empty and holds no hfprune run ({RECIPE_FILE}); choose "
                          "another folder")
    return [RecipeRunner(seed_recipe(recipe, seed), overwrite) for seed in recipe.training.run_seeds]


def preflight_seeds(recipe: Recipe, levels: list[Level], overwrite: bool = False) -> None:
    """Every check of every seed's run (``--check``); writes nothing."""
    for runner in seed_runners(recipe, overwrite):
        runner.preflight(levels)


def run_seeds(recipe: Recipe, levels: list[Level], report_dir: Path, title: str | None = None,
              overwrite: bool = False) -> SeedRuns:
    """Run (or resume) every seed's dense stage and levels, then write the report over the seeds into
    ``report_dir`` and the seeds' summary into each pruned model's ``hfprune_results.json``."""
    from hfprune.pipeline.preflight import RECIPE_FILE
    from hfprune.pipeline.seeds_report import SeedsReport
    from hfprune.utils.lock import output_lock

    seeds, root = recipe.training.run_seeds, recipe.output_dir
    runners = seed_runners(recipe, overwrite)
    stage_dirs = [f"{seed_dir(seed)}/{name}" for seed in seeds for name in (DENSE_STAGE, *(lv.name for lv in levels))]
    finished = set() if overwrite else {name for name in stage_dirs if (root / name / STAGE_FILE).is_file()}
    if finished:
        logger.info("resuming: %d of %d (stage, seed) pairs already finished", len(finished), len(stage_dirs))
    dense: list[StageResult] = []
    results: list[list[StageResult]] = []
    # under a launch the main process alone locks and writes (hfprune.utils.distributed); every process trains
    from hfprune.training_args import resolve_device

    distributed.join(resolve_device(recipe.training.device, "training.device"))
    with distributed.main_writes(lambda: output_lock(root, "output.dir")), contextlib.ExitStack() as locks:
        for runner in runners:  # every seed checked (preflight) and its folder locked before the first stage runs
            locks.enter_context(runner.locked(levels))
        distributed.main_only(lambda: atomic_write_json(root / RECIPE_FILE, {**recipe.to_dict(),
                                                                           "fingerprint": recipe.fingerprint()}))
        for seed, runner in zip(seeds, runners, strict=True):
            logger.info("seed %d (%d of %d)", seed, len(dense) + 1, len(seeds))
            seed_dense, seed_levels = runner.run(levels)
            runner._dense = None  # the next seed has its own dense model: free this one
            dense.append(seed_dense)
            results.append(seed_levels)
        runs = SeedRuns(recipe, seeds, [level.name for level in levels], dense, results, report_dir,
                        [name for name in stage_dirs if name not in finished])

        def write_report() -> None:
            report = SeedsReport.of(runs, title)
            report.save(report_dir)
            write_model_summaries(runs, report)

        distributed.main_only(write_report)
    return runs


def write_model_summaries(runs: SeedRuns, report: Any) -> None:
    """Add the seeds' summary (``"seeds"``) to every pruned model's ``hfprune_results.json``: a card built from any
    seed's model then reports the mean, spread and pooled tests, and names the seed chosen for publishing."""
    from hfprune.pipeline.runner import RESULTS_FILE

    root = runs.recipe.output_dir
    for j, name in enumerate(runs.level_dirs):
        summary = report.level_summary(j)
        for seed, seed_levels in zip(runs.seeds, runs.levels, strict=True):
            path = seed_levels[j].model_path(root / seed_dir(seed) / name) / RESULTS_FILE
            if not path.is_file():
                continue
            payload = json.loads(path.read_text(encoding="utf-8"))
            payload["seeds"] = {**summary, "this_seed": seed}
            atomic_write_json(path, payload)
