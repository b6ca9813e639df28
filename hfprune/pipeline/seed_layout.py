"""Where the seeds of a run with ``training.seeds`` live (``<output.dir>/seed-<s>/``), and the checks that keep a
run folder to one layout. Kept apart from :mod:`hfprune.pipeline.seeds` so that the one-seed runner and sweep can
refuse a folder of the other layout without importing the seeds' runner (no import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfprune.errors import ConfigError
from hfprune.pipeline.results import DENSE_STAGE, STAGE_FILE

if TYPE_CHECKING:
    from hfprune.recipes.schema import Recipe

SEED_PREFIX = "seed-"


def seed_dir(seed: int) -> str:
    """A seed's folder, relative to the run folder: ``seed-2``."""
    return f"{SEED_PREFIX}{seed}"


def several_seeds(recipe: Recipe) -> bool:
    return len(recipe.training.run_seeds) > 1


def refuse_several_seeds(recipe: Recipe, function: str) -> None:
    """The one-seed entry points refuse a recipe with several seeds instead of silently running one."""
    if several_seeds(recipe):
        raise ConfigError(f"training.seeds: {function} runs one seed, got {recipe.training.run_seeds}; expected "
                          "hfprune.pipeline.seeds.run_seeds (or hfprune run/sweep --seeds)")


def check_layout(recipe: Recipe) -> None:
    """A run folder holds one layout: one seed (``dense/`` at the top) or several (``seed-<s>/``), never both."""
    root = recipe.output_dir
    if not root.is_dir():
        return
    if several_seeds(recipe):
        if (root / DENSE_STAGE / STAGE_FILE).is_file():
            raise ConfigError(f"output.dir: {root} holds a one-seed run (dense/); a run with several seeds keeps its "
                              "stages in seed-<s>/: choose another output.dir")
    elif any((p / DENSE_STAGE / STAGE_FILE).is_file() for p in root.glob(f"{SEED_PREFIX}*")):
        raise ConfigError(f"output.dir: {root} holds a run with several seeds (seed-<s>/); expected its seeds "
                          "(training.seeds or --seeds) or another output.dir")
