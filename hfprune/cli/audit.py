"""``hfprune audit MODEL_DIR --data NAME --robustness deepwordbug,pwws --privacy mia --out DIR``: audit any saved
model (dense or pruned) and write DIR/audit.json and DIR/audit.md."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from hfprune.audit.model_audit import AuditPlan
    from hfprune.audit.privacy.audit import ShadowModels
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.audit.saved_model import ShadowTrainer


def _names(text: str | None) -> list[str]:
    """``"a,b"`` -> ["a", "b"]; ``none`` or empty -> []."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "audit",
        help="robustness and privacy audit of any saved model",
        description="Attack MODEL_DIR (a saved classifier, dense or pruned, trained by hfprune or elsewhere) with "
        "TextAttack recipes on a seeded sample of --data, and run membership inference on its member set: the split "
        "its training recorded (membership_split.json in MODEL_DIR or --split-from), or the one --members / "
        "--members-file names. With --reference, the reference model is audited on the same examples and the paired "
        "tests between them go into the report. Every check runs before anything is written; results go to "
        "DIR/audit.json and DIR/audit.md, with per-recipe and privacy reports beside them.",
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
    parser.add_argument("--n-loyalty", type=int, default=None,
                        help="clean examples scored for loyalty to --reference and the paired accuracy test "
                        "(default: the same as --n-examples)")
    parser.add_argument("--privacy", default=None,
                        help="comma-separated privacy audits: mia (membership inference), extraction and exposure "
                        "(causal LMs with canaries), or none (default: mia when a member set is known, else skipped "
                        "with a notice; asked explicitly without one, an error)")
    members = parser.add_mutually_exclusive_group()
    members.add_argument("--members", default=None, metavar="DATASET[:SPLIT[:N]]",
                         help="member set of a model trained elsewhere: N rows (default: as many as the held-out "
                         "split has) of DATASET's SPLIT (default: train), drawn with --seed; as many non-members "
                         "are drawn from the held-out split (--nonmember-split)")
    members.add_argument("--members-file", default=None, metavar="FILE",
                         help="member set as a UTF-8 file: one text per line (causal LMs), or JSON lines with "
                         '"text" and, for a classifier, "label"; as many non-members come from --data\'s held-out '
                         "split")
    parser.add_argument("--nonmember-split", default=None,
                        help="split the non-members of --members / --members-file are drawn from (default: "
                        "validation, else test, never the members' split)")
    parser.add_argument("--split-from", default=None,
                        help="folder holding membership_split.json (default: MODEL_DIR; a pruned copy of a dense "
                        "run audits against the dense run's split)")
    parser.add_argument("--reference", default=None,
                        help="reference (dense) model directory: audited with the same plan on the same examples and "
                        "member set (into DIR/reference); its loyalty and the paired tests (exact McNemar for "
                        "accuracy and attack outcome, DeLong for MIA and extraction AUCs, Holm) go into the report")
    parser.add_argument("--shadows", default=None, metavar="{dense,target}",
                        help="train shadow models so the reference and lira membership attacks run: dense "
                        "(dense fine-tuning) or target (for a pruned model, then its level's pruning with "
                        "distillation); MODEL_DIR must be RUN/STAGE/model of an hfprune run, whose recipe.json (and "
                        "hfprune_results.json) say how; trained into DIR/shadows, except those the run itself trained "
                        "the same way, which are reused")
    parser.add_argument("--n-shadows", type=int, default=None,
                        help="shadow models with --shadows (the first is the reference; lira needs 2; default 2)")
    parser.add_argument("--max-length", type=int, default=64, help="truncate inputs (default: %(default)s)")
    parser.add_argument("--n-resamples", type=int, default=1000,
                        help="bootstrap resamples for confidence intervals (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attack sample (default: %(default)s)")
    parser.add_argument("--name", default=None, help="model name in the report (default: the folder name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)")
    from hfprune.cli.config_args import add_config_arguments
    from hfprune.training_args import TrainingSettings

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

    n_loyalty = args.n_examples if args.n_loyalty is None else args.n_loyalty
    for flag, value, minimum in (("--n-examples", args.n_examples, 1), ("--query-budget", args.query_budget, 1),
                                 ("--n-loyalty", n_loyalty, 1),
                                 ("--max-length", args.max_length, 8), ("--n-resamples", args.n_resamples, 0),
                                 ("--seed", args.seed, 0)):
        if value < minimum:
            raise ConfigError(f"{flag}: expected an integer >= {minimum}, got {value}")
    recipes = _names(args.robustness)
    privacy = ["mia"] if args.privacy is None else [name.lower() for name in _names(args.privacy)]
    if not recipes and not privacy:
        raise ConfigError("--robustness and --privacy are both none: nothing to audit")
    return AuditPlan(dataset=args.data, split=args.split, max_length=args.max_length, recipes=recipes,
                     n_examples=dict.fromkeys(recipes, args.n_examples), query_budget=args.query_budget,
                     robustness_seed=args.seed, privacy=privacy, n_resamples=args.n_resamples,
                     privacy_resamples=args.n_resamples, n_loyalty_examples=n_loyalty)


def member_source(args: argparse.Namespace) -> Callable[[str], MembershipSplit] | None:
    """The member set --members / --members-file names, built once the model's task is known (None: neither)."""
    from hfprune.audit.privacy.members import MembersSpec, members_from_dataset, members_from_file
    from hfprune.errors import ConfigError

    if args.members is None and args.members_file is None:
        if args.nonmember_split is not None:
            raise ConfigError("--nonmember-split: only used with --members or --members-file")
        return None
    if args.split_from is not None:
        raise ConfigError("--split-from: a recorded split and --members/--members-file both name the members; "
                          "pass one")
    if args.members_file is not None:
        return lambda task: members_from_file(args.members_file, args.data, task, args.seed, args.nonmember_split,
                                              args.max_length)
    spec = MembersSpec.parse(args.members)
    return lambda task: members_from_dataset(spec, task, args.seed, args.nonmember_split, args.max_length)


def shadow_source(args: argparse.Namespace) -> ShadowTrainer | None:
    """The shadow trainer --shadows / --n-shadows describe, read and checked from MODEL_DIR's run (None: no
    shadows). A --reference that is the run's dense model is audited against the dense shadows."""
    from hfprune.errors import ConfigError
    from hfprune.pipeline.audit_shadows import saved_model_shadows
    from hfprune.utils.logging import get_logger

    if args.shadows is None:
        if args.n_shadows is not None:
            raise ConfigError("--n-shadows: only used with --shadows dense|target")
        return None
    if args.members is not None or args.members_file is not None:
        raise ConfigError("--shadows: shadows are trained on the run's data disjoint from its recorded split; not "
                          "with --members/--members-file")
    saved = saved_model_shadows(args.model_dir, args.shadows, 2 if args.n_shadows is None else args.n_shadows)
    reference_is_dense = args.reference is not None and saved.is_dense_model_of_the_run(args.reference)
    if args.reference is not None and not reference_is_dense:
        get_logger(__name__).warning("--reference is not this run's dense model: audited without shadows")

    def train(split: MembershipSplit, out: Path) -> tuple[ShadowModels, ShadowModels | None]:
        trained, dense = saved.train(split, out)
        return trained, dense if reference_is_dense else None

    return train


def run(args: argparse.Namespace) -> int:
    from hfprune.audit.model_audit import AUDIT_JSON, AUDIT_MARKDOWN
    from hfprune.audit.saved_model import audit_saved_model

    plan = build_plan(args)
    members = member_source(args)
    shadows = shadow_source(args)
    result = audit_saved_model(args.model_dir, plan, args.out, name=args.name, reference_dir=args.reference,
                               split_from=args.split_from, overwrite=args.overwrite, threads=args.threads,
                               members=members, mia_optional=args.privacy is None, device=args.device,
                               shadows=shadows)
    for name, rate in result.attack_success_rates().items():
        print(f"{name}: attack success rate {rate:.3f}")
    best = result.strongest_mia()
    if best is not None:
        print(f"membership inference AUC {best[1]:.3f} ({best[0]} attack)")
    for comparison in result.comparison:
        print(f"against the reference: {comparison.line()}")
    print(f"audit: {args.out}/{AUDIT_JSON}, {args.out}/{AUDIT_MARKDOWN}")
    return 0
