"""``hfprune audit MODEL_DIR --shadows dense|target --n-shadows K``: the shadow models of a saved model's reference
and LiRA membership attacks, trained as ``hfprune run`` trains them (:mod:`hfprune.pipeline.shadows`).

Shadows must be trained the way the audited model was, so only a model folder of an ``hfprune run`` / ``sweep``
qualifies: its run folder records the recipe (``recipe.json``), and a pruned model's ``hfprune_results.json``
records its level's pruning settings. ``dense`` trains K dense shadows; ``target`` also prunes each with the
level's settings while distilling from it (for a dense model the two are the same). Everything is read and checked
before the audit writes anything; the shadows are trained inside the audit's output folder, never in the run's.
Shadows the run already trained the same way (its recipe had ``n_shadows``; for ``target``, ``shadows: target``
and this level) are read from the run's finished stages instead of being trained again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.audit.privacy.audit import ShadowModels
from hfprune.audit.privacy.report import SHADOW_MODES
from hfprune.errors import ConfigError
from hfprune.models.trusted import json_object
from hfprune.pipeline.preflight import RECIPE_FILE
from hfprune.pipeline.results import DENSE_STAGE
from hfprune.pipeline.runner import RESULTS_FILE
from hfprune.pipeline.shadows import train_dense_shadows, train_target_shadows
from hfprune.recipes.audit_sections import SHADOW_MIA_ATTACKS

if TYPE_CHECKING:
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pruning.config import PruningConfig
    from hfprune.recipes.schema import Recipe

MODEL_FOLDER = "model"  # a stage keeps its model in STAGE/model, under the run folder


@dataclasses.dataclass(frozen=True)
class SavedModelShadows:
    """How to train the shadows of one saved model of an hfprune run: the run's recipe (with ``n_shadows`` and
    ``shadows`` set from the flags), the level's pruning (None: a dense model) and the model folder (its tokenizer
    is the shadows' for a causal LM)."""

    recipe: Recipe
    pruning: PruningConfig | None
    model_dir: Path
    run_dir: Path
    run_n_shadows: int = 0  # the shadows the run itself trained (its recipe's audits.privacy)
    run_mode: str = "dense"

    @property
    def mode(self) -> str:
        return self.recipe.audits.privacy.shadows

    def is_dense_model_of_the_run(self, directory: str | Path) -> bool:
        return Path(directory).resolve() == (self.run_dir / DENSE_STAGE / MODEL_FOLDER).resolve()

    def train(self, split: MembershipSplit, out: Path) -> tuple[ShadowModels, ShadowModels]:
        """Train into ``out`` on examples disjoint from ``split``: (the audited model's shadows, the dense ones,
        which a reference audit of the run's dense model uses)."""
        from hfprune.data.paths import data_dir_env

        with data_dir_env(self.recipe.data.data_dir):  # the run's data folder, as hfprune run trains
            dense = ShadowModels(train_dense_shadows(self.recipe, split, self.model_dir, out / DENSE_STAGE,
                                                     self.run_shadows(self.run_dir / DENSE_STAGE, split)).directories,
                                 "dense")
            if self.pruning is None or self.mode == "dense":
                return ShadowModels(dense.directories, self.mode), dense
            level = self.model_dir.parent
            trained = self.run_shadows(level, split) if self.run_mode == "target" else []
            return train_target_shadows(self.recipe, self.pruning, dense.directories, out / "target", out,
                                        trained), dense

    def run_shadows(self, stage: Path, split: MembershipSplit) -> list[str]:
        """The shadows the run already trained in its finished ``stage`` folder the way these are trained (the same
        recipe and seeds; a pruned level's with this level's pruning), in order: reused instead of retrained. Each
        must have drawn its members disjoint from the audited ``split``, as a shadow trained here would."""
        from hfprune.audit.privacy.split import MembershipSplit
        from hfprune.pipeline.results import STAGE_FILE
        from hfprune.pipeline.shadows import SHADOW_FILE, SHADOWS_DIR

        if not (stage / STAGE_FILE).is_file():  # the done-marker: a stage without it may be half-built
            return []
        audited = {*split.member_ids, *split.nonmember_ids}
        expected = None if stage.name == DENSE_STAGE else json.loads(json.dumps(  # as the shadow's record was written
            [self.pruning.to_dict(), self.recipe.distillation.to_dict()]))
        found = []
        for i in range(min(self.run_n_shadows, self.recipe.audits.privacy.n_shadows)):
            directory = stage / SHADOWS_DIR / f"shadow-{i}"
            try:
                if set(MembershipSplit.load(directory).member_ids) & audited:
                    break
                if expected is not None:
                    record = json_object("--shadows", directory / SHADOW_FILE)
                    if [record.get("pruning"), record.get("distillation")] != expected:
                        break
            except (OSError, ValueError, ConfigError):  # missing or unreadable: trained here instead
                break
            found.append(str(directory))
        return found


def saved_model_shadows(model_dir: str | Path, mode: str, n_shadows: int) -> SavedModelShadows:
    """Read what ``MODEL_DIR`` of an hfprune run records to retrain its shadows; a one-line error naming the flag
    and the missing file otherwise."""
    from hfprune.pruning.config import PruningConfig
    from hfprune.recipes.schema import Recipe

    if mode not in SHADOW_MODES:
        raise ConfigError(f"--shadows: expected one of {sorted(SHADOW_MODES)}, got {mode!r}")
    if isinstance(n_shadows, bool) or not isinstance(n_shadows, int) or n_shadows < 1:
        raise ConfigError(f"--n-shadows: expected an integer >= 1, got {n_shadows!r}")
    model = Path(model_dir).resolve()
    # the nearest folder above the stage with a recipe: RUN/dense/model, RUN/LEVEL/model, RUN/levels/LEVEL/model
    # (families), each seed of a run with several seeds being a run of its own (RUN/seed-<s>/...)
    run = next((folder for folder in model.parents[1:4] if (folder / RECIPE_FILE).is_file()), None)
    if model.name != MODEL_FOLDER or run is None:
        raise ConfigError(f"--shadows: {model_dir} is not the model folder of an hfprune run (RUN/STAGE/model with "
                          f"RUN/{RECIPE_FILE}): shadows are retrained with the run's recipe, which a model trained "
                          "elsewhere does not record")
    payload = json_object("--shadows", run / RECIPE_FILE)
    payload.pop("fingerprint", None)
    try:
        recipe = Recipe.from_dict(payload)
    except ConfigError as exc:
        raise ConfigError(f"--shadows: {run / RECIPE_FILE}: {exc}") from None
    run_privacy = recipe.audits.privacy  # the shadows the run trained itself
    # the shadow attacks these shadows serve (lira needs two), so the recipe validates with any n_shadows
    attacks = [a for a in recipe.audits.privacy.attacks if a not in SHADOW_MIA_ATTACKS]
    attacks += [a for a, needed in SHADOW_MIA_ATTACKS.items() if n_shadows >= needed]
    privacy = dataclasses.replace(recipe.audits.privacy, n_shadows=n_shadows, shadows=mode, attacks=attacks)
    recipe = dataclasses.replace(recipe, audits=dataclasses.replace(recipe.audits, privacy=privacy))
    pruning = None
    if model.parent != run / DENSE_STAGE:
        results = model / RESULTS_FILE
        if not results.is_file():
            raise ConfigError(f"--shadows: {results} is missing; a pruned model of an hfprune run records its "
                              "level's pruning settings there, which target shadows are pruned with")
        recorded = (json_object("--shadows", results).get("pruned") or {}).get("pruning")
        if not isinstance(recorded, dict):
            raise ConfigError(f"--shadows: {results} has no pruned.pruning settings; expected the file hfprune run "
                              "writes")
        try:
            pruning = PruningConfig.from_dict(recorded)
        except ConfigError as exc:
            raise ConfigError(f"--shadows: {results}: pruned.pruning: {exc}") from None
    return SavedModelShadows(recipe, pruning, model, run, run_privacy.n_shadows, run_privacy.shadows)
