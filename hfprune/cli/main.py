"""The ``hfprune`` command (also ``python -m hfprune``). Each subcommand is a module exposing ``add_parser(subparsers)``
and ``run(args) -> int``; adding one is one entry in ``COMMANDS``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys

from hfprune.errors import ConfigError, HfpruneError
from hfprune.utils import distributed

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
# subcommands that run on several processes under accelerate launch / torchrun (data-parallel training; the main
# process writes): the others run in one process
LAUNCHABLE = ("finetune", "prune", "run", "sweep")


def build_parser() -> argparse.ArgumentParser:
    from hfprune import __version__

    parser = argparse.ArgumentParser(
        prog="hfprune",
        description="Prune Hugging Face models (heads and FFN neurons, gradient scores), recover accuracy by "
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
    follower = not distributed.is_main()  # another process of a launch: the main one logs, prints and reports
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if follower else logging.INFO,
        format=f"%(asctime)s %(levelname)s{f' [rank {distributed.rank()}]' if follower else ''} %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        try:
            check_launch(args.command)
        except ConfigError:
            if follower:  # every process finds the same: the main process reports it
                raise distributed.MainProcessFailed("refused at launch") from None
            raise
        with open(os.devnull, "w") if follower else contextlib.nullcontext(sys.stdout) as out, \
                contextlib.redirect_stdout(out):
            return int(args.handler(args) or 0)
    except distributed.MainProcessFailed:
        return 2  # the main process printed its error
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


def check_launch(command: str) -> None:
    """Under accelerate launch / torchrun with several processes: refuse a command that runs in one process, and
    sharded launches (FSDP, DeepSpeed), whose ranks hold only shards of the weights that pruning scores."""
    if not distributed.launched():
        return
    if command not in LAUNCHABLE:
        raise ConfigError(f"runs in one process; expected it without accelerate launch or torchrun "
                          f"(this is one of {distributed.world_size()} launched processes); launchable: "
                          f"{', '.join(LAUNCHABLE)}")
    from hfprune.pruning.distributed import sharding_in_use, sharding_refusal

    sharding = sharding_in_use(None)
    if sharding is not None:
        raise ConfigError(sharding_refusal(sharding))


def _one_line(exc: BaseException) -> str:
    """The message on one line: whatever the library said, a CLI user sees one line per error."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
