"""Shadow models of a recipe's membership audit (``audits.privacy.n_shadows`` and ``.shadows``).

Shadow i is trained like the audited model, seeded ``+ 1 + i`` (:func:`shadow_recipe`), on members drawn disjoint from
the audited members and non-members (Carlini et al. 2022's offline setting); the first doubles as the reference
model. The dense stage trains dense shadows into ``dense/shadows/shadow-<i>``. With ``shadows: target`` every
pruned level prunes each dense shadow with the level's own pruning settings while distilling from that dense
shadow (as the level's model distils from the dense model) into ``LEVEL/shadows/shadow-<i>``; with ``dense`` the
levels reuse the dense shadows. Shadows live inside their stage's folder, so they are reused, or recomputed, with
the stage (whose fingerprint names the mode). The audit only receives the trained directories
(:class:`~hfprune.audit.privacy.audit.ShadowModels`): it never sees the recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.audit.privacy.audit import ShadowModels
from hfprune.audit.privacy.runs import load_run, train_shadows
from hfprune.pipeline.results import DENSE_STAGE
from hfprune.utils.io import atomic_write_json
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pruning.config import PruningConfig
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

SHADOWS_DIR = "shadows"
SHADOW_FILE = "hfprune_shadow.json"


def shadow_recipe(recipe: Recipe, index: int) -> Recipe:
    """The recipe shadow ``index`` is trained with: the target's, with seed ``training.seed + 1 + index``
    (initialisation and data order) and split seed ``member_split_seed + 1 + index`` (another member draw: a run of
    several seeds fixes the split seed, and shadows sharing one draw would not be independent)."""
    t = recipe.training
    training = dataclasses.replace(t, seed=t.seed + 1 + index, split_seed=t.member_split_seed + 1 + index)
    return dataclasses.replace(recipe, training=training)


def dense_shadow_dirs(recipe: Recipe, root: Path) -> list[str]:
    """Where the finished dense stage under ``root`` keeps its shadows."""
    folder = root / DENSE_STAGE / SHADOWS_DIR
    return [str(folder / f"shadow-{i}") for i in range(recipe.audits.privacy.n_shadows)]


def train_dense_shadows(recipe: Recipe, split: MembershipSplit, tokenizer_dir: Path, out: Path,
                        trained: Sequence[str] = ()) -> ShadowModels:
    """Train the recipe's ``n_shadows`` dense shadows into ``out``, disjoint from the audited ``split``; a causal
    LM trained here reuses the target's tokenizer (``tokenizer_dir``) so shadows score the same tokens. The first
    ``len(trained)`` shadows are those directories, already trained this way (a finished run's own), not retrained."""
    from hfprune.pipeline.stages import task_spec

    spec = task_spec(recipe.model.task)

    def train_one(i: int, directory: str) -> str:
        spec.train_dense(shadow_recipe(recipe, i), Path(directory), exclude=split, tokenizer_dir=tokenizer_dir)
        return directory

    # the dense model's own recipe is dense fine-tuning: its shadows are those of either mode
    return ShadowModels(train_shadows(train_one, recipe.audits.privacy.n_shadows, out, trained),
                        recipe.audits.privacy.shadows)


def level_shadows(recipe: Recipe, pruning: PruningConfig, root: Path, out: Path) -> ShadowModels:
    """The shadows a pruned level is audited against: with ``shadows: target`` each dense shadow of the finished
    dense stage under ``root`` pruned with ``pruning`` while distilling from itself (saved into ``out``), with
    ``dense`` the dense shadows themselves."""
    dense_dirs = dense_shadow_dirs(recipe, root)
    if recipe.audits.privacy.shadows == "dense":
        return ShadowModels(dense_dirs, "dense")
    return train_target_shadows(recipe, pruning, dense_dirs, out, root)


def train_target_shadows(
    recipe: Recipe, pruning: PruningConfig, dense_dirs: list[str], out: Path, root: Path,
    trained: Sequence[str] = (),
) -> ShadowModels:
    """Each dense shadow in ``dense_dirs`` pruned with ``pruning`` while distilling from itself, as the level's
    model distils from the dense model, saved into ``out/shadow-<i>`` with a record of how (paths relative to
    ``root``, the folder that holds both). The first ``len(trained)`` are those directories, already trained so."""
    from hfprune.pipeline.stages import prune_and_distill

    def train_one(i: int, directory: str) -> str:
        teacher = load_run(dense_dirs[i], device=recipe.training.device)
        shadow = shadow_recipe(recipe, i)
        prune_and_distill(shadow, pruning, teacher, Path(directory), out / f".trainer-{i}")
        atomic_write_json(Path(directory) / SHADOW_FILE, {  # how this shadow was made, beside its weights
            "trained_as": "target", "dense_shadow": _recorded_path(dense_dirs[i], root),
            "seed": shadow.training.seed, "pruning": pruning.to_dict(), "distillation": recipe.distillation.to_dict(),
        })
        return directory

    return ShadowModels(train_shadows(train_one, len(dense_dirs), out, trained), "target")


def _recorded_path(directory: str, root: Path) -> str:
    """``directory`` relative to ``root`` when inside it (the record moves with the folder), else absolute (a dense
    shadow an audit reused from the run it audits)."""
    path = Path(directory).resolve()
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)
