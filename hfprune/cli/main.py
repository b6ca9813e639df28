"""The ``hfprune`` command. Each subcommand is a module exposing ``add_parser(subparsers)`` and ``run(args) -> int``;
adding one is one entry in ``COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hfprune.errors import HfpruneError

# subcommand -> module implementing it
COMMANDS: dict[str, str] = {
    "env": "hfprune.cli.env",
    "finetune": "hfprune.cli.finetune",
    "prune": "hfprune.cli.prune",
    "run": "hfprune.cli.run",
    "sweep": "hfprune.cli.sweep",
    "audit": "hfprune.cli.audit",
    "push": "hfprune.cli.push",
}


def build_parser() -> argparse.ArgumentParser:
    from hfprune import __version__

    parser = argparse.ArgumentParser(
        prog="hfprune",
        description="Prune Hugging Face models (heads and FFN neurons, movement scores), recover accuracy by "
        "distillation, and audit what pruning did to robustness and privacy.",
    )
    parser.add_argument("--version", action="version", version=f"hfprune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except HfpruneError as exc:
        print(f"hfprune {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hfprune {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or an input no check foresaw: one line, traceback on request
        if args.verbose:
            raise
        print(f"hfprune {args.command}: unexpected error: {type(exc).__name__}: {_one_line(exc)} (rerun with "
              "--verbose for the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The message on one line: whatever the library said, a CLI user sees one line per error."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
