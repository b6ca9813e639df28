"""``hfprune sweep RECIPE.yaml --sparsities 0,0.3,0.5,0.7,0.9``: one recipe at several sparsity levels, resumable,
with one report of accuracy, latency, attack success rate and membership-inference AUC against sparsity.
``--families structured,weight,combined --param-sparsities 0.5,0.9`` compares pruning families at equal parameter
count instead (hfprune.pipeline.families)."""

from __future__ import annotations

import argparse

from hfprune.cli.run import add_recipe_arguments, recipe_overrides, run_with_seeds


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep",
        help="run a recipe at several sparsity levels (resumable) and report metrics vs sparsity",
        description="Train and audit the dense model once, then prune, evaluate, time and audit one copy per "
        "level, each in its own folder (levels/sparsity-X) finished by a done-marker; a finished level is never "
        "recomputed, so an interrupted sweep resumes. Writes sweep/report.md and sweep/plots/*.png with the "
        "dense model as the reference row. With --families, compares structured, weight and combined pruning at "
        "equal parameter sparsity (levels/<family>-<p>) and adds size on disk and dense- vs sparse-kernel latency. "
        "With --seeds, each seed is a complete sweep (families too) in seed-<s>/ and sweep/report.md covers the seeds.",
    )
    add_recipe_arguments(parser)
    parser.add_argument("--sparsities", default=None,
                        help="comma-separated levels in [0, 1), e.g. 0,0.3,0.5,0.7,0.9 (default: the recipe's "
                        "sweep.sparsities)")
    parser.add_argument("--apply-to", default=None,
                        help="comma-separated pruning fields a level sets: head_sparsity, ffn_sparsity, "
                        "weight_sparsity (default: the recipe's sweep.apply_to)")
    parser.add_argument("--families", default=None,
                        help="compare pruning families at equal parameter count instead: comma-separated, from "
                        "structured, weight, combined (default: the recipe's sweep.families); levels go to "
                        "levels/<family>-<p>")
    parser.add_argument("--param-sparsities", default=None,
                        help="with --families: comma-separated fractions of the prunable encoder-layer weights "
                        "removed, e.g. 0.5,0.9 (default: the recipe's sweep.param_sparsities)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from hfprune.pipeline.report import REPORT_MD, RunReport
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.pipeline.seed_layout import several_seeds
    from hfprune.pipeline.sweep import REPORT_DIR, parse_sparsities, plan_levels, run_sweep, sweep_title
    from hfprune.recipes.families_spec import parse_list
    from hfprune.recipes.loading import load_recipe

    sparsities = parse_sparsities(args.sparsities) if args.sparsities is not None else None
    apply_to = [p.strip() for p in args.apply_to.split(",")] if args.apply_to is not None else None
    families = parse_list("--families", args.families) if args.families is not None else None
    param_sparsities = (parse_sparsities(args.param_sparsities, "--param-sparsities")
                        if args.param_sparsities is not None else None)
    recipe = load_recipe(args.recipe, recipe_overrides(args))
    levels, use_families = plan_levels(recipe, sparsities, apply_to, families, param_sparsities)
    if several_seeds(recipe):
        return run_with_seeds(args, recipe, levels, recipe.output_dir / REPORT_DIR, sweep_title(recipe),
                              families=use_families)
    if args.check:
        RecipeRunner(recipe, args.overwrite).preflight(levels)
        print(f"{args.recipe}: OK; {len(levels)} levels ({', '.join(level.name for level in levels)}) in "
              f"{recipe.output_dir}")
        return 0
    result = run_sweep(recipe, sparsities, apply_to, overwrite=args.overwrite, families=families,
                       param_sparsities=param_sparsities)
    if use_families:
        from hfprune.pipeline.families_report import FamiliesReport

        print(FamiliesReport(recipe, result.dense, result.levels, efficiency=result.efficiency).families_table())
    else:
        print(RunReport(recipe, result.dense, result.levels).results_table())
    reused = len(result.levels) - len(result.computed)
    print(f"{len(result.computed)} level(s) computed, {reused} reused from an earlier run")
    print(f"report: {result.report_dir / REPORT_MD}")
    return 0
