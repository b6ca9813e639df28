"""``hfprune sweep RECIPE.yaml --sparsities 0,0.3,0.5,0.7,0.9``: one recipe at several sparsity levels, resumable,
with one report of accuracy, latency, attack success rate and membership-inference AUC against sparsity."""

from __future__ import annotations

import argparse

from hfprune.cli.run import add_recipe_arguments, recipe_overrides


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep",
        help="run a recipe at several sparsity levels (resumable) and report metrics vs sparsity",
        description="Train and audit the dense model once, then prune, evaluate, time and audit one copy per "
        "level, each in its own folder (levels/sparsity-X) finished by a done-marker; a finished level is never "
        "recomputed, so an interrupted sweep resumes. Writes sweep/report.md and sweep/plots/*.png with the "
        "dense model as the reference row.",
    )
    add_recipe_arguments(parser)
    parser.add_argument("--sparsities", default=None,
                        help="comma-separated levels in [0, 1), e.g. 0,0.3,0.5,0.7,0.9 (default: the recipe's "
                        "sweep.sparsities)")
    parser.add_argument("--apply-to", default=None,
                        help="comma-separated pruning fields a level sets: head_sparsity, ffn_sparsity, "
                        "weight_sparsity (default: the recipe's sweep.apply_to)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from hfprune.recipes.report import REPORT_MD, RunReport
    from hfprune.recipes.runner import RecipeRunner
    from hfprune.recipes.schema import load_recipe
    from hfprune.recipes.sweep import parse_sparsities, run_sweep, sweep_levels

    sparsities = parse_sparsities(args.sparsities) if args.sparsities is not None else None
    apply_to = [p.strip() for p in args.apply_to.split(",")] if args.apply_to is not None else None
    recipe = load_recipe(args.recipe, recipe_overrides(args))
    levels = sweep_levels(recipe, sparsities, apply_to)
    if args.check:
        RecipeRunner(recipe, args.overwrite).preflight(levels)
        print(f"{args.recipe}: OK; {len(levels)} levels ({', '.join(level.name for level in levels)}) in "
              f"{recipe.output_dir}")
        return 0
    result = run_sweep(recipe, sparsities, apply_to, overwrite=args.overwrite)
    print(RunReport(recipe, result.dense, result.levels).results_table())
    reused = len(result.levels) - len(result.computed)
    print(f"{len(result.computed)} level(s) computed, {reused} reused from an earlier run")
    print(f"report: {result.report_dir / REPORT_MD}")
    return 0
