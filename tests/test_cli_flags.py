"""Every flag of every ``hfprune`` subcommand, generated from the argparse parsers: each parses in its documented form
and reaches the config the command builds with its type (issue 20: ``prune --threads 1`` reached
``PruneClassifierConfig`` as the string '1'), and every registered scorer is offered wherever ``--scoring`` is."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import pytest

from hfprune.cli import audit, finetune, prune
from hfprune.cli.main import build_parser
from hfprune.cli.run import recipe_overrides
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.scoring import SCORERS
from hfprune.recipes.loading import REMOVED, load_recipe
from hfprune.utils.config import field_help_text, matches_type

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "minilm-sst2-offline.yaml"


def _recipe_from(args: argparse.Namespace):
    """``run`` and ``sweep`` turn their flags into dotted recipe overrides; the recipe validates their types."""
    return load_recipe(RECIPE, recipe_overrides(args))


# subcommand -> the config (or plan, or recipe) it builds from its flags before doing anything
BUILDERS = {"prune": prune.build_config, "finetune": finetune.build_config, "audit": audit.build_plan,
            "run": _recipe_from, "sweep": _recipe_from}


# free-text flags whose value has a format of its own: an example of it
FORMATTED = {("audit", "privacy"): "mia", ("audit", "robustness"): "pwws", ("sweep", "sparsities"): "0,0.5",
             ("sweep", "param_sparsities"): "0.5", ("sweep", "families"): "structured,weight",
             ("sweep", "apply_to"): "head_sparsity"}


# numeric flags whose example must lie in a range of their own (a speedup > 1), and the flags they need beside them
# (a latency target replaces the default sparsities)
VALUED = {("prune", "latency_target"): 2.5}
COMPANIONS = {("prune", "latency_target"): ["--head-sparsity", "0", "--ffn-sparsity", "0"]}


# choice flags whose example must be a value this machine runs (a CPU-only CI has neither cuda, mps nor fp16)
RUNNABLE = {"device": "cpu", "precision": "bf16"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _example(command: str, action: argparse.Action) -> tuple[list[str], object]:
    """Command-line words setting ``action`` to a value other than its default, and the typed value expected."""
    flag = action.option_strings[-1] if action.option_strings else None
    if isinstance(action, argparse.BooleanOptionalAction):
        return ([action.option_strings[1]] if action.default else [action.option_strings[0]]), not action.default
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return [flag], action.const
    if action.nargs in ("+", "*") and action.type is int:  # a list flag (run/sweep --seeds 1 2)
        return [flag, "1", "2"], [1, 2]
    if action.choices:
        value = RUNNABLE.get(action.dest) or next(c for c in reversed(list(action.choices)) if c != action.default)
        text, expected = str(value), value
    elif action.type is int:
        expected = action.default + 1 if isinstance(action.default, int) else 2
        text = str(expected)
    elif action.type is float:
        expected = VALUED.get((command, action.dest)) or (action.default / 2 if action.default else 0.25)
        text = repr(expected)
    else:
        assert action.type in (None, str), f"{action.dest}: add an example for type {action.type}"
        text = expected = FORMATTED.get((command, action.dest), f"x-{action.dest}")
    return ([flag, text] if flag else [text]), expected


def _cases() -> list[tuple[str, str]]:
    skip = (argparse._HelpAction, argparse._VersionAction)
    return [(name, action.dest) for name, sub in _subparsers().items() for action in sub._actions
            if not isinstance(action, skip)]


def _required_words(command: str, sub: argparse.ArgumentParser, but: str) -> list[str]:
    words = []
    for action in sub._actions:
        if action.dest != but and (action.required or not action.option_strings):
            words += _example(command, action)[0]
    return words


@pytest.mark.parametrize(("command", "dest"), _cases())
def test_every_flag_parses_and_reaches_the_config_typed(command, dest):
    sub = _subparsers()[command]
    action = next(a for a in sub._actions if a.dest == dest)
    words, expected = _example(command, action)
    args = build_parser().parse_args([command, *_required_words(command, sub, dest), *words,
                                      *COMPANIONS.get((command, dest), [])])
    value = getattr(args, dest)
    assert value == expected and type(value) is type(expected)
    if command not in BUILDERS:
        return
    built = BUILDERS[command](args)  # validates: a wrongly typed value is a ConfigError here
    if dataclasses.is_dataclass(built) and dest in {f.name for f in dataclasses.fields(built)}:
        field_value = getattr(built, dest)
        hint = typing.get_type_hints(type(built))[dest]
        assert matches_type(field_value, hint)
        assert _holds(field_value, expected)
    for key, override in recipe_overrides(args).items() if command in ("run", "sweep") else ():
        if override is REMOVED:  # a key the flag replaces (--seeds replaces training.seed)
            continue
        section, name = key.split(".")
        recipe_value = built.output_dir if key == "output.dir" else getattr(getattr(built, section), name)
        assert str(recipe_value) == str(override) if key == "output.dir" else recipe_value == override


def _holds(field_value: object, expected: object) -> bool:
    """Whether a config field holds a flag's value: itself, a comma list's items, or a per-recipe mapping (audit
    --n-examples) with the value for every recipe."""
    if isinstance(field_value, dict):
        return all(v == expected for v in field_value.values())
    if isinstance(field_value, list):
        return field_value == expected.split(",")
    return field_value == expected


def test_threads_reaches_prune_classifier_config_as_an_integer():
    """The issue's exact command line."""
    config = prune.build_config(build_parser().parse_args(["prune", "--threads", "1"]))
    assert config.threads == 1 and isinstance(config.threads, int)


def test_scoring_help_lists_every_registered_scorer():
    assert {"snip_momentum", "movement_ste", "soft_movement"} <= set(SCORERS)
    offered = {name: a for name, sub in _subparsers().items() for a in sub._actions if a.dest == "scoring"}
    assert offered  # hfprune prune has --scoring
    for name, action in offered.items():
        assert sorted(action.choices) == sorted(SCORERS)
        text = " ".join(_subparsers()[name].format_help().split())
        assert all(scorer in text for scorer in SCORERS)
    help_text = field_help_text(next(f for f in dataclasses.fields(PruningConfig) if f.name == "scoring"))
    assert all(scorer in help_text for scorer in SCORERS)
