"""``hfprune run RECIPE.yaml``: one recipe end to end — dense fine-tuning, pruning with distillation, robustness and
privacy audits of both models, latency, and a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hfprune.cli.config_args import add_config_arguments

# recipe keys a run or sweep flag of the same name overrides (flags generated from the recipe's own fields)
TRAINING_FLAGS = ("device", "precision")

def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``run`` and ``sweep`` share: the recipe, output and thread overrides, overwrite, check."""
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="recipe file (see recipes/ for examples)")
    parser.add_argument("--output-dir", default=None, help="run folder, overriding the recipe's output.dir")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, overriding training.threads (default: the idle cores)")
    from hfprune.recipes.schema import TrainingSection

    add_config_arguments(parser, TrainingSection, only=TRAINING_FLAGS, overrides="training")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run the dense model and every pruned level once per seed, e.g. --seeds 0 1 2 "
                        "(replaces training.seed and training.seeds). A seed drives initialisation, pruning and "
                        "data order; the member split, evaluation sample and canaries stay those of the first seed "
                        "(training.split_seed) in every seed, so the audits compare the same examples. Stages go to "
                        "seed-<s>/, each resumable; the report gives means, spreads over seeds and pooled paired "
                        "tests. One seed: a plain run")
    parser.add_argument("--control", action="store_true",
                        help="also train the control (audits.control): the pruned stage's training with nothing "
                        "removed, each pruned model tested against it too, separating what pruning changed from "
                        "what the extra training did")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute stages already finished (each replaced only once its new version is complete)")
    parser.add_argument("--check", action="store_true",
                        help="validate the recipe and everything it points at (model, data, attack resources, "
                        "output folder), print the plan, write nothing")


def recipe_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line values as dotted recipe keys (validated like the file's own keys)."""
    overrides: dict[str, Any] = {}
    if args.output_dir is not None:
        overrides["output.dir"] = args.output_dir
    if args.threads is not None:
        overrides["training.threads"] = args.threads
    if args.control:
        overrides["audits.control"] = True
    for name in TRAINING_FLAGS:
        if getattr(args, name) is not None:
            overrides[f"training.{name}"] = getattr(args, name)
    if args.seeds is not None:
        from hfprune.recipes.loading import REMOVED

        overrides["training.seeds"] = args.seeds
        overrides["training.seed"] = REMOVED  # the flag replaces the file's seed rather than clashing with it
    return overrides


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="run a recipe: prune + distill + robustness and privacy audits + report",
        description="Validate RECIPE.yaml completely (unknown keys, types, ranges, model, data, attack resources) "
        "before writing anything; then fine-tune the dense model on a recorded member split, prune a copy while "
        "distilling from it, evaluate both, time them, attack both with TextAttack, run membership inference on "
        "the recorded split, and write report.md, report.json and plots into the run folder. Finished stages are "
        "reused when the command is run again. recipes/minilm-sst2-offline.yaml runs offline.",
    )
    add_recipe_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from hfprune.pipeline.report import REPORT_MD, RunReport
    from hfprune.pipeline.runner import RecipeRunner, run_recipe, single_level
    from hfprune.pipeline.seed_layout import several_seeds
    from hfprune.recipes.loading import load_recipe

    recipe = load_recipe(args.recipe, recipe_overrides(args))
    if several_seeds(recipe):
        return run_with_seeds(args, recipe, single_level(recipe), recipe.output_dir)
    if args.check:
        levels = single_level(recipe)
        RecipeRunner(recipe, args.overwrite).preflight(levels)
        folders = ", ".join(f"{name}/" for name in ["dense", *(level.name for level in levels)])
        print(f"{args.recipe}: OK; would write {recipe.output_dir} ({folders}, report.md)")
        return 0
    dense, levels = run_recipe(recipe, overwrite=args.overwrite)
    print(RunReport(recipe, dense, levels).results_table())
    print(f"report: {recipe.output_dir / REPORT_MD}")
    print(f"pruned model: {recipe.output_dir / 'pruned' / 'model'} (load it with hfprune.load_pruned; upload it "
          "with hfprune push)")
    return 0


def run_with_seeds(args: argparse.Namespace, recipe: Any, levels: list[Any], report_dir: Path,
                   title: str | None = None, families: bool = False) -> int:
    """``run`` and ``sweep`` with several seeds (hfprune.pipeline.seeds; with ``families``, a families sweep per
    seed, hfprune.pipeline.families_seeds): check, or run and print the summary."""
    from hfprune.pipeline.report import REPORT_MD
    from hfprune.pipeline.seed_layout import seed_dir
    from hfprune.pipeline.seeds import finished_stages, preflight_seeds, run_seeds

    seeds = recipe.training.run_seeds
    if args.check:
        preflight_seeds(recipe, levels, args.overwrite)
        stages, finished = finished_stages(recipe, levels)
        reused = 0 if args.overwrite else len(finished)
        print(f"{args.recipe}: OK; {len(seeds)} seeds x (dense + {len(levels)} level(s)) in {recipe.output_dir} "
              f"({', '.join(seed_dir(seed) + '/' for seed in seeds)}); {reused} of {len(stages)} (stage, seed) pairs "
              f"finished with these settings (reused), {len(stages) - reused} to compute")
        if families and not args.overwrite:
            from hfprune.pipeline.families_seeds import reusable_efficiency

            print("efficiency.json: {} of {} (level, seed) records reused".format(*reusable_efficiency(recipe, levels)))
        return 0
    if families:
        from hfprune.pipeline.families_seeds import run_family_seeds

        runs = run_family_seeds(recipe, levels, overwrite=args.overwrite)
    else:
        runs = run_seeds(recipe, levels, report_dir, title, overwrite=args.overwrite)
    report = runs.report
    print(report.families_table() if families else report.results_table())
    total = len(seeds) * (len(levels) + 1)
    print(f"{len(runs.computed)} of {total} (stage, seed) pairs computed, {total - len(runs.computed)} reused")
    print(f"report: {report_dir / REPORT_MD}")
    for j, level in enumerate(runs.levels[0]):
        published = report.published_seed(j)
        print(f"{level.name}: publish {recipe.output_dir / report._model_dir(j, published)} (seed {published}, the "
              f"median {report.quality_metric}; upload it with hfprune push)")
    return 0
