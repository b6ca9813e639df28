"""``training.seeds`` (``--seeds 0 1 2``): the dense model and every pruned level of ``hfprune run`` or
``hfprune sweep``, repeated once per seed, then one report over the seeds.

Each seed is a complete one-seed run in ``<output.dir>/seed-<s>/`` (its own ``recipe.json``, ``dense/`` and
``pruned/`` or ``levels/...``), run by :class:`~hfprune.pipeline.runner.RecipeRunner` with ``training.seed = s``:
the seed drives initialisation, pruning and data order. ``training.split_seed`` (default: the first seed) is the
same in every seed, so the member split, the evaluation sample and the canaries do not change, and the attack sample
follows ``audits.robustness.seed``: every seed's models are scored on the same examples, which the pooled paired
tests need. Each (stage, seed) is resumable on its own through the stages' fingerprints and done-markers; a new seed
costs one seed. The report (:mod:`hfprune.pipeline.seeds_report`) goes where the one-seed report goes. A families
sweep over seeds (:mod:`hfprune.pipeline.families_seeds`) runs here too, with its own step after each seed and its
own report. A run folder may start as ``seed-<s>/`` folders of plain one-seed runs of the recipe, which it resumes
(:func:`check_root`).

One seed (the default) never comes here: the folders, results and report stay those of a plain run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pipeline.results import DENSE_STAGE, STAGE_FILE, Level, StageResult
from hfprune.pipeline.seed_layout import check_layout, seed_dir
from hfprune.utils import distributed
from hfprune.utils.io import atomic_write_json
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.pipeline.seeds_report import SeedsReport
    from hfprune.recipes.schema import Recipe

AfterSeed = Callable[["RecipeRunner", StageResult, list[StageResult]], Any]

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
    extras: list[Any] = field(default_factory=list)
    """What ``run_seeds``'s ``after_seed`` returned for each seed (a families sweep: its efficiency records)."""
    report: Any = None
    """The report over the seeds (a ``SeedsReport``), once ``run_seeds`` has built it."""


def seed_runners(recipe: Recipe, overwrite: bool = False) -> list[RecipeRunner]:
    """One runner per seed, once the run folder's layout is checked: under a launch by the main process alone (a
    follower that gets here after the main process has started writing the run would take its first folders for
    someone else's and refuse them), its verdict sent to the others."""
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.training_args import resolve_device

    distributed.join(resolve_device(recipe.training.device, "training.device"))
    distributed.main_only(lambda: (check_layout(recipe), check_root(recipe)))
    return [RecipeRunner(seed_recipe(recipe, seed), overwrite) for seed in recipe.training.run_seeds]


def check_root(recipe: Recipe) -> None:
    """The run folder is empty, an hfprune run (``recipe.json``), or a folder of one-seed runs of this recipe.

    The last: ``seed-<s>/`` folders made by plain one-seed runs (``training.seed = s`` and this run's split seed,
    output in ``<output.dir>/seed-<s>``, e.g. started in parallel), which the run resumes. At least one of them
    must record this seed's recipe (the same fingerprint); the folder's other entries must be plain files the run
    does not write (logs, recipe copies), left as they are.
    """
    from hfprune.models.trusted import json_object
    from hfprune.pipeline.preflight import RECIPE_FILE, diff_settings
    from hfprune.pipeline.report import REPORT_JSON, REPORT_MD
    from hfprune.utils.lock import LOCK_FILE

    root = recipe.output_dir
    if not root.is_dir() or (root / RECIPE_FILE).is_file():
        return
    entries = [p for p in root.iterdir() if p.name != LOCK_FILE]
    if not entries:
        return
    refused = (f"output.dir: {root} is not empty and holds no hfprune run ({RECIPE_FILE}) nor only seed-<s>/ runs "
               "of this recipe beside plain files")
    seeds = {seed_dir(seed): seed for seed in recipe.training.run_seeds}
    adopted = []
    for entry in entries:
        if entry.name in seeds and entry.is_dir() and not entry.is_symlink():
            path = entry / RECIPE_FILE
            recorded = json_object("output.dir", path) if path.is_file() else None
            expected = seed_recipe(recipe, seeds[entry.name])
            if recorded is not None and recorded.get("fingerprint") != expected.fingerprint():
                try:
                    old = type(recipe).from_dict({k: v for k, v in recorded.items() if k != "fingerprint"})
                    changed = ", ".join(diff_settings(old.result_dict(), expected.result_dict())) or "unknown"
                except HfpruneError:  # a recipe this version no longer reads
                    changed = "unknown"
                raise ConfigError(f"output.dir: {path} records another recipe than seed "
                                  f"{seeds[entry.name]} of this one (changed: {changed}); choose another folder")
            adopted += [entry.name] if recorded is not None else []
        elif not entry.is_file() or entry.is_symlink() or entry.name in (REPORT_MD, REPORT_JSON):
            raise ConfigError(f"{refused} ({entry.name}); choose another folder")
    if not adopted:
        raise ConfigError(f"{refused}; choose another folder")
    logger.info("output.dir %s: resuming the one-seed runs %s", root, ", ".join(sorted(adopted)))


def finished_stages(recipe: Recipe, levels: list[Level]) -> tuple[list[str], list[str]]:
    """Every (stage, seed) folder of the run, relative to it (``seed-1/levels/...``), and those already finished
    (their done-marker exists; preflight checks it matches the recipe)."""
    root = recipe.output_dir
    stage_dirs = [f"{seed_dir(seed)}/{name}" for seed in recipe.training.run_seeds
                  for name in (DENSE_STAGE, *(lv.name for lv in levels))]
    return stage_dirs, [name for name in stage_dirs if (root / name / STAGE_FILE).is_file()]


def preflight_seeds(recipe: Recipe, levels: list[Level], overwrite: bool = False) -> None:
    """Every check of every seed's run (``--check``); writes nothing."""
    for runner in seed_runners(recipe, overwrite):
        runner.preflight(levels)


def run_seeds(recipe: Recipe, levels: list[Level], report_dir: Path, title: str | None = None,
              overwrite: bool = False, after_seed: AfterSeed | None = None,
              report_type: type[SeedsReport] | None = None) -> SeedRuns:
    """Run (or resume) every seed's dense stage and levels, then write the report over the seeds into
    ``report_dir`` and the seeds' summary into each pruned model's ``hfprune_results.json``.

    ``after_seed(runner, dense, levels)`` runs on the main process after each seed's stages, its dense model still
    loaded (a families sweep measures efficiency and writes that seed's own report); its results go to
    ``SeedRuns.extras``. ``report_type`` (default :class:`~hfprune.pipeline.seeds_report.SeedsReport`) builds the
    report from the runs."""
    from hfprune.pipeline.preflight import RECIPE_FILE
    from hfprune.pipeline.seeds_report import SeedsReport
    from hfprune.utils.lock import output_lock

    seeds, root = recipe.training.run_seeds, recipe.output_dir
    runners = seed_runners(recipe, overwrite)
    stage_dirs, done = finished_stages(recipe, levels)
    finished = set() if overwrite else set(done)
    if finished:
        logger.info("resuming: %d of %d (stage, seed) pairs already finished", len(finished), len(stage_dirs))
    dense: list[StageResult] = []
    results: list[list[StageResult]] = []
    extras: list[Any] = []
    # under a launch the main process alone locks and writes (hfprune.utils.distributed; seed_runners joined the
    # process group); every process trains
    with distributed.main_writes(lambda: output_lock(root, "output.dir")), contextlib.ExitStack() as locks:
        for runner in runners:  # every seed checked (preflight) and its folder locked before the first stage runs
            locks.enter_context(runner.locked(levels))
        distributed.main_only(lambda: atomic_write_json(root / RECIPE_FILE, {**recipe.to_dict(),
                                                                           "fingerprint": recipe.fingerprint()}))
        for seed, runner in zip(seeds, runners, strict=True):
            logger.info("seed %d (%d of %d)", seed, len(dense) + 1, len(seeds))
            seed_dense, seed_levels = runner.run(levels)
            if after_seed is not None:
                hook = after_seed
                extras.append(distributed.main_only(lambda: hook(runner, seed_dense, seed_levels)))  # noqa: B023
            runner._dense = None  # the next seed has its own dense model: free this one
            dense.append(seed_dense)
            results.append(seed_levels)
        runs = SeedRuns(recipe, seeds, [level.name for level in levels], dense, results, report_dir,
                        [name for name in stage_dirs if name not in finished], extras)

        runs.report = (report_type or SeedsReport).of(runs, title)

        def write_report() -> None:
            runs.report.save(report_dir)
            write_model_summaries(runs, runs.report)

        distributed.main_only(write_report)
    return runs


def write_model_summaries(runs: SeedRuns, report: Any) -> None:
    """Add the seeds' summary (``"seeds"``) to every pruned model's ``hfprune_results.json``: a card built from any
    seed's model then reports the mean, spread and pooled tests, and names the seed chosen for publishing."""
    from hfprune.pipeline.runner import add_to_results

    root = runs.recipe.output_dir
    for j, name in enumerate(runs.level_dirs):
        summary = report.level_summary(j)
        for seed, seed_levels in zip(runs.seeds, runs.levels, strict=True):
            add_to_results(seed_levels[j].model_path(root / seed_dir(seed) / name), "seeds",
                           {**summary, "this_seed": seed})
