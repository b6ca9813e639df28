"""``hfprune audit MODEL_DIR --data NAME --robustness deepwordbug,pwws --privacy mia --out DIR``: audit any saved
model (dense or pruned) and write DIR/audit.json and DIR/audit.md."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hfprune.audit.model_audit import AuditPlan


def _names(text: str | None) -> list[str]:
    """``"a,b"`` -> ["a", "b"]; ``none`` or empty -> []."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "audit",
        help="robustness and privacy audit of any saved model",
        description="Attack MODEL_DIR (a saved classifier, dense or pruned by hfprune) with TextAttack recipes on a "
        "seeded sample of --data, and run membership inference on the member split its training recorded "
        "(membership_split.json in MODEL_DIR or --split-from). Every check runs before anything is written; "
        "results go to DIR/audit.json and DIR/audit.md, with per-recipe and privacy reports beside them.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="saved model directory (config.json + weights)")
    parser.add_argument("--data", required=True, help="dataset name for hfprune.data.load_dataset, e.g. glue/sst2")
    parser.add_argument("--split", default="validation", help="split attacked (default: %(default)s)")
    parser.add_argument("--robustness", default="deepwordbug,pwws",
                        help="comma-separated attack recipes, or none (default: %(default)s)")
    parser.add_argument("--n-examples", type=int, default=50,
                        help="examples attacked per recipe (default: %(default)s)")
    parser.add_argument("--query-budget", type=int, default=300,
                        help="model queries per attacked example (default: %(default)s)")
    parser.add_argument("--privacy", default="mia",
                        help="comma-separated privacy audits: mia (membership inference), extraction and exposure "
                        "(causal LMs with canaries), or none (default: %(default)s)")
    parser.add_argument("--split-from", default=None,
                        help="folder holding membership_split.json (default: MODEL_DIR; a pruned copy of a dense "
                        "run audits against the dense run's split)")
    parser.add_argument("--reference", default=None, help="dense model directory: also measure loyalty to it")
    parser.add_argument("--max-length", type=int, default=64, help="truncate inputs (default: %(default)s)")
    parser.add_argument("--n-resamples", type=int, default=1000,
                        help="bootstrap resamples for confidence intervals (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attack sample (default: %(default)s)")
    parser.add_argument("--name", default=None, help="model name in the report (default: the folder name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)")
    from hfprune.cli.config_args import add_config_arguments
    from hfprune.training import TrainingSettings

    # the audit trains nothing, so only the device: its models score and are attacked in fp32
    add_config_arguments(parser, TrainingSettings, only=("device",))
    parser.add_argument("--out", required=True, help="output folder (audit.json, audit.md, detailed reports)")
    parser.add_argument("--overwrite", action="store_true", help="replace an audit already in --out")
    parser.set_defaults(handler=run)
    return parser


def build_plan(args: argparse.Namespace) -> AuditPlan:
    """The audit plan the flags describe; out-of-range values are errors naming the flag."""
    from hfprune.audit.model_audit import AuditPlan
    from hfprune.errors import ConfigError

    for flag, value, minimum in (("--n-examples", args.n_examples, 1), ("--query-budget", args.query_budget, 1),
                                 ("--max-length", args.max_length, 8), ("--n-resamples", args.n_resamples, 0),
                                 ("--seed", args.seed, 0)):
        if value < minimum:
            raise ConfigError(f"{flag}: expected an integer >= {minimum}, got {value}")
    recipes, privacy = _names(args.robustness), [name.lower() for name in _names(args.privacy)]
    if not recipes and not privacy:
        raise ConfigError("--robustness and --privacy are both none: nothing to audit")
    return AuditPlan(dataset=args.data, split=args.split, max_length=args.max_length, recipes=recipes,
                     n_examples=dict.fromkeys(recipes, args.n_examples), query_budget=args.query_budget,
                     robustness_seed=args.seed, privacy=privacy, n_resamples=args.n_resamples,
                     privacy_resamples=args.n_resamples, n_loyalty_examples=None)


def run(args: argparse.Namespace) -> int:
    from hfprune.audit.model_audit import AUDIT_JSON, AUDIT_MARKDOWN, audit_saved_model

    plan = build_plan(args)
    result = audit_saved_model(args.model_dir, plan, args.out, name=args.name, reference_dir=args.reference,
                               split_from=args.split_from, overwrite=args.overwrite, threads=args.threads,
                               device=args.device)
    for name, rate in result.attack_success_rates().items():
        print(f"{name}: attack success rate {rate:.3f}")
    best = result.strongest_mia()
    if best is not None:
        print(f"membership inference AUC {best[1]:.3f} ({best[0]} attack)")
    print(f"audit: {args.out}/{AUDIT_JSON}, {args.out}/{AUDIT_MARKDOWN}")
    return 0
