"""``hfprune prune``: fine-tune a dense classifier, prune it (snip_momentum by default) while distilling, report."""

from __future__ import annotations

import argparse

from hfprune.cli.config_args import add_config_arguments, config_from_args
from hfprune.pipeline.prune_classifier import PruneClassifierConfig


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prune",
        help="prune a text classifier (heads + FFN neurons) with distillation and report accuracy and size",
        description="Fine-tune the dense model (or take --teacher), prune a copy of it with hfprune's "
        "MovementPruningCallback while distilling from the dense teacher, evaluate both on the validation split "
        "and save dense model, pruned model (reloadable with hfprune.load_pruned) and report.md/report.json. "
        "The defaults (embedded MiniLM, 3,000 SST-2 sentences) run offline in about ten minutes on 2 cores.",
    )
    add_config_arguments(parser, PruneClassifierConfig)
    parser.set_defaults(handler=run)
    return parser


def build_config(args: argparse.Namespace) -> PruneClassifierConfig:
    """The validated config the flags describe (what ``run`` hands to ``prune_classifier``)."""
    return config_from_args(PruneClassifierConfig, args)


def run(args: argparse.Namespace) -> int:
    from hfprune.pipeline.prune_classifier import prune_classifier

    config = build_config(args)
    result = prune_classifier(config)
    print(result.to_markdown(config))
    print(f"pruned model saved to {result.pruned_dir} (load it with hfprune.load_pruned)")
    print(f"report: {config.output_dir}/report.md")
    return 0
