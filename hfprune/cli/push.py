"""``hfprune push MODEL_DIR --repo-id USER/NAME``: upload a pruned model with its model card to the Hub
(``HF_ENDPOINT`` honoured; the token comes from --token or HF_TOKEN and is never printed)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload a pruned model with a model card (metrics, structure, how to load it)",
        description="Create the Hub repository if needed and upload MODEL_DIR (e.g. runs/NAME/pruned/model) with a "
        "README.md model card: metadata (library_name, base_model, license and language of the base model's "
        "local card, pipeline_tag, tags, datasets, model-index with the task metric, attack success rates and "
        "membership-inference AUC) and sections on the pruning procedure, the structure kept per layer, loading "
        "with and without hfprune, and framework versions. The membership split and canaries stay local. Uses "
        "HF_ENDPOINT when set; without a network, --dry-run prints the card.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="pruned model folder written by hfprune run / sweep")
    parser.add_argument("--repo-id", required=True, help="USER/NAME (or ORG/NAME) of the model repository")
    parser.add_argument("--token", default=None,
                        help="Hub token (default: HF_TOKEN or the token saved by `hf auth login`); prefer the "
                        "environment, command lines are visible to other users")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--audit", default=None, help="folder of an `hfprune audit` whose results the card reports")
    parser.add_argument("--dense-export", action="store_true",
                        help="also upload a zero-padded dense copy (dense-export/) that plain transformers loads")
    parser.add_argument("--commit-message", default=None, help="default: 'Upload pruned model with hfprune'")
    parser.add_argument("--dry-run", action="store_true", help="print the model card and upload nothing")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hfprune.hub.card import build_model_card
    from hfprune.hub.push import check_repo_id, push_model, upload_files

    if args.dry_run:
        check_repo_id(args.repo_id)
        upload_files(Path(args.model_dir))
        print(build_model_card(args.model_dir, args.repo_id, audit_dir=args.audit, dense_export=args.dense_export))
        return 0
    result = push_model(args.model_dir, args.repo_id, token=args.token, private=args.private, audit_dir=args.audit,
                        dense_export=args.dense_export, commit_message=args.commit_message)
    print(f"uploaded {len(result.files)} files to {result.repo_url}")
    print(f"commit: {result.commit_url}")
    return 0
