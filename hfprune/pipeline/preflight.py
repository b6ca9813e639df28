"""The checks a recipe run makes before it writes its first file (step 1 of :mod:`hfprune.pipeline.runner`): the
model loads, the dataset and its splits exist and are large enough, the attack recipes' resources are on disk, and
any finished stages in the output folder came from this recipe. ``RunChecks`` is the runner's base class: the checks
read the runner's recipe, audit plan, output folder and stage settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.data.paths import data_dir_env
from hfprune.errors import ConfigError, DataError, HfpruneError
from hfprune.pipeline.results import DENSE_STAGE, STAGE_FILE, Level, StageResult
from hfprune.utils import distributed
from hfprune.utils.config import fingerprint
from hfprune.utils.io import contained_path, refuse_inputs_inside, refuse_links_within

if TYPE_CHECKING:
    from hfprune.audit.model_audit import AuditPlan
    from hfprune.recipes.schema import Recipe

RECIPE_FILE = "recipe.json"  # the run folder's record of its recipe: a folder without it is not an hfprune run


def diff_settings(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested settings mappings."""
    changed = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += diff_settings(a, b, dotted + ".")
        elif a != b:
            changed.append(dotted)
    return changed


class RunChecks:
    """The preflight half of :class:`~hfprune.pipeline.runner.RecipeRunner`: the stages' settings (what their
    fingerprints hash) and every check before the first write. The runner sets the attributes declared here and
    provides ``members()``, the student's training examples drawn for ``training.dense_epochs: 0``."""

    recipe: Recipe
    plan: AuditPlan
    root: Path
    overwrite: bool

    def dense_settings(self) -> dict[str, Any]:
        """What the dense stage depends on (a changed pruning setting does not invalidate it)."""
        payload = self.recipe.result_dict()
        training = payload["training"]
        # device, precision and weight decay appear in result_dict only when not the defaults (auto, fp32, 0.0),
        # which keeps the fingerprints of runs made before they existed; set, they change how the dense model trains
        # (so does a split_seed other than the seed, one seed of a run with training.seeds)
        keys = ("dense_epochs", "batch_size", "learning_rate", "seed", "split_seed", "device", "precision",
                "weight_decay")
        return {"model": payload["model"], "data": payload["data"], "audits": payload["audits"],
                "training": {k: training[k] for k in keys if k in training}}

    def level_settings(self, level: Level) -> dict[str, Any]:
        return {**self.recipe.result_dict(), "pruning": level.pruning.result_dict(), "level": level.value}

    def preflight(self, levels: list[Level]) -> None:
        """Every check that can fail, before the first file is written (see the module docstring)."""
        if self.recipe.audits.privacy.n_shadows and distributed.launched():
            # shadows train on the main process alone while the others wait: a DDP Trainer there would hang
            raise ConfigError(f"audits.privacy.n_shadows: shadow models are trained by one process; expected 0 under "
                              f"a launch of {distributed.world_size()} processes (or run with one process)")
        with data_dir_env(self.recipe.data.data_dir):
            labels = self._check_data()
            if self.recipe.pretrained_is_dense:
                try:  # the student's training examples can be drawn: fail now, not after the dense stage
                    self.members()
                except ConfigError as exc:
                    raise ConfigError(f"data.train_samples: {exc}") from None
        model_config = self._check_model(labels)
        if model_config is not None:
            for level in levels:  # the model is known: its head and FFN counts bound the per-layer minimums
                level.pruning.check_model(model_config, self._model_key()[1], "pruning")
        try:
            self.plan.check_resources()
        except HfpruneError as exc:
            raise type(exc)(f"audits.robustness.attacks: {exc}") from None
        self._check_output(levels)

    def _model_key(self) -> tuple[str, str] | None:
        """(dotted key, value) of the model the run starts from; None for a GPT-2 built here."""
        model = self.recipe.model
        if model.teacher is not None:
            return "model.teacher", model.teacher
        return None if model.name is None else ("model.name", model.name)

    def input_paths(self) -> dict[str, str | None]:
        """Dotted key -> every local path the run reads (models, data folder, a dataset given as a path):
        ``--overwrite`` refuses to replace a folder holding one of them."""
        from hfprune.data.paths import data_dir
        from hfprune.models import resolve_model

        model, data = self.recipe.model, self.recipe.data
        return {"model.name": None if model.name is None else resolve_model(model.name),
                "model.teacher": model.teacher, "data.data_dir": str(data_dir(data.data_dir)),
                "data.dataset": data.dataset}

    def _check_model(self, labels: list[str] | None) -> Any:
        from hfprune.audit.privacy.split import SPLIT_FILE
        from hfprune.models.checks import check_model_source

        model = self.recipe.model
        if model.teacher is not None and not (Path(model.teacher) / SPLIT_FILE).is_file():
            raise ConfigError(f"model.teacher: {model.teacher} has no {SPLIT_FILE}; the pruned student trains "
                              "on the members the teacher was trained on, and the privacy audit scores them: "
                              "use a dense model trained by hfprune run (dense/model), finetune_on_members or "
                              "train_canary_lm")
        source = self._model_key()
        if source is None:
            return None  # a GPT-2 built here
        key, where = source
        return check_model_source(key, where, labels=labels, max_length=self.recipe.data.max_length,
                                  length_key="data.max_length")

    def _check_data(self) -> list[str] | None:
        """Both splits load and are large enough; returns the label names of a classification dataset."""
        from hfprune.data import load_dataset
        from hfprune.data.columns import check_layout
        from hfprune.training import label_names

        data, needed = self.recipe.data, self.recipe.data.train_samples + self.recipe.audits.privacy.n_nonmembers
        if self.recipe.audits.privacy.n_shadows:  # shadows draw as many examples again, disjoint from the audited
            needed *= 2
        try:
            train = load_dataset(data.dataset, data.train_split) if self.recipe.model.teacher is None else None
            rows = load_dataset(data.dataset, self.plan.split)
        except (DataError, ValueError, OSError) as exc:
            raise DataError(f"data.dataset: {exc}") from None
        for split, table in ((data.train_split, train), (self.plan.split, rows)):
            if table is not None and len(table) == 0:
                raise DataError(f"data.dataset: {data.dataset} split {split!r} is empty; expected examples")
        check_layout(data.dataset, {"train": train, self.plan.split: rows}, classifier=self.recipe.is_classifier)
        if train is not None and len(train) < needed:
            shadows = self.recipe.audits.privacy.n_shadows > 0
            sum_ = "train_samples + audits.privacy.n_nonmembers"
            why = "; shadow models draw as many again" if shadows else ""
            raise ConfigError(f"data.train_samples: expected {f'2 x ({sum_})' if shadows else sum_} <= {len(train)} "
                              f"(rows of {data.dataset} {data.train_split}{why}), got {data.train_samples} + "
                              f"{self.recipe.audits.privacy.n_nonmembers}")
        if not self.recipe.is_classifier:
            return None
        try:
            return label_names(rows)
        except DataError as exc:
            raise DataError(f"data.dataset: {exc}") from None

    def _check_output(self, levels: list[Level]) -> None:
        from hfprune.utils.lock import LOCK_FILE

        root = self.root
        for level in levels:
            contained_path(root, level.name, "level")
        if root.is_dir():
            refuse_links_within(root, "output.dir")
        if root.exists() and any(p.name != LOCK_FILE for p in root.iterdir()) and not (root / RECIPE_FILE).is_file():
            raise ConfigError(f"output.dir: {root} is not empty and holds no hfprune run ({RECIPE_FILE}); choose "
                              "another folder")
        if self.overwrite:
            refuse_inputs_inside(root, self.input_paths(), "output.dir")
            return
        stages = [(root / DENSE_STAGE, self.dense_settings())]
        stages += [(root / level.name, self.level_settings(level)) for level in levels]
        for stage_dir, settings in stages:
            if not (stage_dir / STAGE_FILE).is_file():
                continue
            done = StageResult.load(stage_dir)
            if done.fingerprint != fingerprint(settings):
                changed = diff_settings(done.settings, settings)
                raise ConfigError(f"output.dir: {stage_dir} was computed from a different recipe (changed: "
                                  f"{', '.join(changed) or 'unknown'}); choose another output.dir or pass --overwrite")
