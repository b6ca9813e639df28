"""Running a recipe: checks, then stages (dense, then each pruned level), then the report.

Order of work, and why:

1. ``preflight`` (:mod:`hfprune.pipeline.preflight`): the model loads here, the dataset and its splits exist and
   are large enough, the attack recipes' resources are on disk, and any finished stages in the output folder came
   from this recipe. Nothing is written until all of that holds, so a bad recipe leaves no partial output.
2. Stages (:mod:`hfprune.pipeline.stage_folder`). Each is built in a hidden staging folder beside its final place;
   its ``stage.json`` (the done-marker, holding the stage's results) is written last, atomically, and the folder is
   then renamed into place. A stage whose marker exists and matches the recipe is reused, never recomputed: an
   interrupted run or sweep resumes.
3. The report is rebuilt from the markers (``report.md``, ``report.json``, PNG plots).

Nothing is written outside the run folder, and a model already there is never overwritten in place (``--overwrite``
swaps a finished stage for its recomputed version only once the new one is complete).

Launched on several processes (``accelerate launch -m hfprune run``), every process takes its share of each stage's
training; the main process alone checks, locks, evaluates, audits and writes, and the others wait for it and read
its stage markers (:mod:`hfprune.utils.distributed`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.audit.model_audit import AuditPlan
from hfprune.data.paths import data_dir_env
from hfprune.errors import ConfigError
from hfprune.pipeline.preflight import RECIPE_FILE, RunChecks
from hfprune.pipeline.results import DENSE_STAGE, Level, StageResult
from hfprune.pipeline.stage_folder import run_stage
from hfprune.utils import distributed
from hfprune.utils.config import fingerprint
from hfprune.utils.io import atomic_write_json, contained_path
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.audit.model_audit import LoadedModel
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pipeline.report import RunReport
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

RESULTS_FILE = "hfprune_results.json"  # written into a pruned model folder: what its model card reports


def audit_plan(recipe: Recipe, split: str) -> AuditPlan:
    """The audit plan a recipe's ``audits`` section describes (the audit package never reads a recipe)."""
    r, p = recipe.audits.robustness, recipe.audits.privacy
    privacy = ["mia"] if p.enabled else []
    if p.enabled and not recipe.is_classifier:
        privacy += ["extraction"] + (["exposure"] if p.canaries.repetitions else [])
    return AuditPlan(
        dataset=recipe.data.dataset, split=split, max_length=recipe.data.max_length,
        recipes=list(r.attacks) if r.enabled else [], n_examples={n: r.examples_for(n) for n in r.attacks},
        query_budget=r.query_budget, n_loyalty_examples=r.n_loyalty_examples, robustness_seed=r.seed,
        privacy=privacy, mia_attacks=list(p.attacks), n_resamples=r.n_resamples, privacy_resamples=p.n_resamples,
    )


# ------------------------------------------------------------------------------------------------------ the runner
class Steps:
    """Numbered log lines with elapsed time, so a user can follow a long run."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.started
        logger.info("[step %d, %02d:%02d elapsed] %s", self.count, elapsed // 60, elapsed % 60, message)


class RecipeRunner(RunChecks):
    """Runs a recipe's dense stage and pruned levels in ``recipe.output_dir``; see the module docstring. The checks
    before anything is written (``preflight``) and the stage settings they compare live in :class:`RunChecks`."""

    def __init__(self, recipe: Recipe, overwrite: bool = False) -> None:
        from hfprune.pipeline.stages import eval_split_name

        self.recipe = recipe
        self.overwrite = overwrite
        self.root = recipe.output_dir
        self.plan = audit_plan(recipe, eval_split_name(recipe))
        self.step = Steps()
        self._dense: LoadedModel | None = None
        self._members: MembershipSplit | None = None
        self._lock_depth = 0

    # ---- stages ----
    @contextlib.contextmanager
    def locked(self, levels: list[Level]) -> Iterator[None]:
        """Preflight, then hold the output folder's lock (:mod:`hfprune.utils.lock`) for the block: a second run
        pointed at the same folder is refused instead of writing beside this one. Re-entrant. Under a launch the
        main process checks and locks; the others wait for its verdict and hold nothing."""
        from hfprune.training_args import resolve_device
        from hfprune.utils.lock import output_lock

        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        distributed.join(resolve_device(self.recipe.training.device, "training.device"))
        with contextlib.ExitStack() as held:
            def check_and_lock() -> None:
                self.preflight(levels)
                held.enter_context(output_lock(self.root, "output.dir"))
                self._check_output(levels)  # again: another run may have finished stages while we checked

            distributed.main_only(check_and_lock)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    def run(self, levels: list[Level]) -> tuple[StageResult, list[StageResult]]:
        """Preflight, then the dense stage and each level (finished ones reused); returns their results."""
        with self.locked(levels):
            return self._run_stages(levels)

    def _run_stages(self, levels: list[Level]) -> tuple[StageResult, list[StageResult]]:
        from tqdm.auto import tqdm

        from hfprune.training import torch_threads

        distributed.main_only(lambda: atomic_write_json(self.root / RECIPE_FILE, {**self.recipe.to_dict(),
                                                                             "fingerprint": self.recipe.fingerprint()}))
        with data_dir_env(self.recipe.data.data_dir), torch_threads(self.recipe.training.threads) as threads:
            logger.info("running recipe %s in %s on %d CPU thread(s)", self.recipe.name, self.root, threads)
            dense = self.dense_stage()
            results = []
            for level in tqdm(levels, desc="pruning levels", unit="level", disable=len(levels) < 2):
                results.append(self.level_stage(level, dense))
        return dense, results

    def dense_stage(self) -> StageResult:
        settings = self.dense_settings()
        result, _ = run_stage(self.root / DENSE_STAGE, fingerprint(settings),
                              lambda staging: self._compute_dense(staging, settings), self.overwrite,
                              follow=self._train_dense)
        return result

    def level_stage(self, level: Level, dense: StageResult) -> StageResult:
        settings = self.level_settings(level)
        result, _ = run_stage(contained_path(self.root, level.name, "level"), fingerprint(settings),
                              lambda staging: self._compute_level(staging, level, dense, settings), self.overwrite,
                              follow=lambda scratch: self._train_level(scratch, level, dense))
        return result

    def dense_model(self, dense: StageResult) -> LoadedModel:
        """The dense model (loaded once per process), the teacher and reference of every level."""
        from hfprune.audit.model_audit import load_model_dir

        if self._dense is None:
            self._dense = load_model_dir(dense.model_path(self.root / DENSE_STAGE), device=self.recipe.training.device)
        return self._dense

    def _train_dense(self, staging: Path) -> float | None:
        """Fine-tune the dense model into ``staging/model``; None (nothing trained) with a teacher. Every process
        of a launch runs this: the main process in the stage's staging folder, the others in a scratch folder."""
        from hfprune.pipeline.stages import train_dense

        if self.recipe.model.teacher is not None or self.recipe.pretrained_is_dense:
            return None
        return train_dense(self.recipe, staging / "model")

    def student_split(self, dense: LoadedModel) -> MembershipSplit:
        """The examples a pruned student trains on (and the audits score): the dense model's recorded members, or
        with ``training.dense_epochs: 0`` the draw of :meth:`members`."""
        split = self.members() if self.recipe.pretrained_is_dense else dense.split
        if split is None:
            raise ConfigError(f"{dense.path}: no membership_split.json; the pruned student trains on the dense "
                              "model's recorded members")
        return split

    def members(self) -> MembershipSplit:
        """``training.dense_epochs: 0``: the examples every pruned student trains on, drawn (seeded) from
        ``data.train_split`` as a dense fine-tune would; recorded in each pruned model's folder."""
        from hfprune.pipeline.stages import task_spec

        if self._members is None:
            self._members = task_spec(self.recipe.model.task).draw_members(self.recipe)
        return self._members

    def _compute_dense(self, staging: Path, settings: dict[str, Any]) -> StageResult:
        from hfprune import __version__
        from hfprune.audit.model_audit import load_model_dir, run_model_audit
        from hfprune.audit.robustness import AuditTarget
        from hfprune.pipeline.stages import evaluate_model, save_pretrained_dense
        from hfprune.pruning.stats import sparsity_report

        seconds: dict[str, float] = {}
        if self.recipe.model.teacher is not None:
            model_dir = str(Path(self.recipe.model.teacher).resolve())
            self.step(f"dense model: using the fine-tuned teacher {model_dir}")
        elif self.recipe.pretrained_is_dense:
            self.step(f"dense model: {self.recipe.model.name} as loaded (training.dense_epochs: 0)")
            seconds["loading"] = save_pretrained_dense(self.recipe, staging / "model")
            model_dir = "model"
        else:
            self.step(f"dense fine-tuning of {self.recipe.model.name or 'a GPT-2 built here'} on "
                      f"{self.recipe.data.train_samples} {self.recipe.data.dataset} examples")
            seconds["training"] = self._train_dense(staging)
            model_dir = "model"
        loaded = load_model_dir(model_dir if Path(model_dir).is_absolute() else staging / model_dir,
                                device=self.recipe.training.device)
        self.step("evaluating the dense model")
        started = time.perf_counter()
        quality = evaluate_model(loaded.model, loaded.tokenizer, self.recipe)
        seconds["evaluation"] = time.perf_counter() - started
        shadows = None
        if self.recipe.audits.privacy.n_shadows:
            from hfprune.pipeline.shadows import SHADOWS_DIR, train_dense_shadows

            self.step(f"dense shadows: {self.recipe.audits.privacy.n_shadows} model(s) trained like it on examples "
                      "disjoint from the audited ones")
            started = time.perf_counter()
            shadows = train_dense_shadows(self.recipe, loaded.split, Path(loaded.path), staging / SHADOWS_DIR)
            seconds["shadows"] = time.perf_counter() - started
        target = AuditTarget("dense", loaded.model, loaded.tokenizer, 0.0)
        with distributed.alone():  # the other processes wait: an audit must not need them (no Trainer)
            audit = run_model_audit(self.plan, target, staging / "audit", split=loaded.split,
                                    canaries=loaded.canaries, step=self.step, shadows=shadows)
        seconds["audit"] = audit.seconds
        return StageResult(
            name=DENSE_STAGE, kind="dense", level=None, fingerprint=fingerprint(settings), settings=settings,
            model_dir=model_dir, quality=quality.to_dict(),
            sparsity=sparsity_report(loaded.model, self.recipe.data.max_length).to_dict(), audit=audit.to_dict(),
            seconds=seconds, hfprune_version=__version__,
        )

    def _train_level(self, staging: Path, level: Level, dense_stage: StageResult) -> tuple[Any, float]:
        """Prune and distil a copy of the dense model into ``staging/model``; returns (student, seconds). Every
        process of a launch runs this: the main process in the stage's staging folder, the others in a scratch
        folder, all reading the dense model the main process published."""
        from hfprune.audit.privacy.runs import AuditedRun
        from hfprune.pipeline.stages import prune_and_distill

        dense = self.dense_model(dense_stage)
        run = AuditedRun(dense.model, dense.tokenizer, self.student_split(dense), dense.canaries, dense.path)
        return prune_and_distill(self.recipe, level.pruning, run, staging / "model", staging / "trainer")

    def _compute_level(self, staging: Path, level: Level, dense_stage: StageResult,
                       settings: dict[str, Any]) -> StageResult:
        from hfprune import __version__
        from hfprune.audit.model_audit import run_model_audit
        from hfprune.audit.robustness import AuditTarget
        from hfprune.pipeline.stages import evaluate_model
        from hfprune.pruning.latency import measure_latency
        from hfprune.pruning.stats import sparsity_report

        self.step(f"{level.label}: pruning (heads {level.pruning.head_sparsity:.0%}, FFN "
                  f"{level.pruning.ffn_sparsity:.0%}) with distillation "
                  f"{'on' if self.recipe.distillation.enabled else 'off'}")
        student, train_seconds = self._train_level(staging, level, dense_stage)
        dense = self.dense_model(dense_stage)
        seconds = {"training": train_seconds}
        self.step(f"{level.label}: evaluating")
        started = time.perf_counter()
        quality = evaluate_model(student, dense.tokenizer, self.recipe)
        seconds["evaluation"] = time.perf_counter() - started
        report = sparsity_report(student, self.recipe.data.max_length)
        latency = None
        if self.recipe.audits.latency_rounds:
            self.step(f"{level.label}: latency, dense vs pruned, interleaved")
            latency = measure_latency(dense.model, student, rounds=self.recipe.audits.latency_rounds).to_dict()
        target = AuditTarget(level.label, student, dense.tokenizer, max(0.0, report.param_sparsity))
        reference = AuditTarget("dense", dense.model, dense.tokenizer, 0.0) if self.plan.recipes else None
        shadows = None
        if self.recipe.audits.privacy.n_shadows:
            from hfprune.pipeline.shadows import SHADOWS_DIR, level_shadows

            self.step(f"{level.label}: shadows trained {self.recipe.audits.privacy.shadows}")
            started = time.perf_counter()
            shadows = level_shadows(self.recipe, level.pruning, self.root, staging / SHADOWS_DIR)
            seconds["shadows"] = time.perf_counter() - started
        with distributed.alone():  # the other processes wait: an audit must not need them (no Trainer)
            audit = run_model_audit(self.plan, target, staging / "audit", reference=reference,
                                    split=self.student_split(dense),
                                    canaries=dense.canaries, step=self.step, shadows=shadows)
        seconds["audit"] = audit.seconds
        result = StageResult(
            name=level.label, kind="pruned", level=level.value, fingerprint=fingerprint(settings),
            settings=settings, model_dir="model", quality=quality.to_dict(), sparsity=report.to_dict(),
            audit=audit.to_dict(), seconds=seconds, pruning=level.pruning.to_dict(), latency=latency,
            hfprune_version=__version__,
        )
        atomic_write_json(staging / "model" / RESULTS_FILE, self.model_results(result, dense_stage))
        return result

    def model_results(self, result: StageResult, dense: StageResult) -> dict[str, Any]:
        """What the pruned model's card reports, saved in its folder so ``hfprune push`` needs nothing else."""
        r = self.recipe
        return {
            "kind": "hfprune_results", "task": r.model.task, "base_model": r.model.name,
            "dataset": r.data.dataset, "recipe": r.name,
            "training": {"train_samples": r.data.train_samples, "max_length": r.data.max_length,
                         **{k: v for k, v in r.training.to_dict().items() if k != "threads"}},
            "distillation": r.distillation.to_dict(),
            "pruned": {k: v for k, v in result.to_dict().items() if k not in ("settings", "fingerprint")},
            "dense": {"quality": dense.quality, "audit": dense.audit, "sparsity": dense.sparsity},
        }


CONTROL_STAGE = "control"


def write_control_records(root: Path, levels: list[Level], report: RunReport) -> None:
    """With a control in the run (:attr:`RunReport.control`), add it to every other level's ``hfprune_results.json``
    (``"control"``: its quality, audit and sparsity, like ``"dense"``), so the card built from a pruned model tests
    it against the control as the report does (with several seeds the summary carries those tests instead)."""
    control = report.control
    if control is None:
        return
    record = {"name": control.name, "quality": control.quality, "audit": control.audit, "sparsity": control.sparsity}
    for level, stage in zip(levels, report.levels, strict=True):
        if stage is not control:
            add_to_results(stage.model_path(root / level.name), "control", record)


def add_to_results(model_dir: Path, key: str, value: Any) -> None:
    """Set ``key`` in the ``hfprune_results.json`` of a finished stage's model (what its card reports), if it has
    one: records known only once the whole run is done (the control's, the summary over seeds)."""
    path = model_dir / RESULTS_FILE
    if path.is_file():
        payload = json.loads(path.read_text(encoding="utf-8"))
        payload[key] = value
        atomic_write_json(path, payload)


def single_level(recipe: Recipe) -> list[Level]:
    """``hfprune run``: one pruned model, with the recipe's own pruning settings, in ``pruned/``; with
    ``audits.control``, first the control in ``control/`` (the same settings, nothing removed)."""
    control = [Level(CONTROL_STAGE, None, recipe.pruning.as_control())] if recipe.audits.control else []
    return [*control, Level("pruned", None, recipe.pruning)]


def run_recipe(recipe: Recipe, overwrite: bool = False) -> tuple[StageResult, list[StageResult]]:
    """Run one recipe (dense + one pruned model) and write the report; returns the stage results."""
    from hfprune.pipeline.report import RunReport
    from hfprune.pipeline.seed_layout import check_layout, refuse_several_seeds

    refuse_several_seeds(recipe, "run_recipe")
    check_layout(recipe)
    runner, planned = RecipeRunner(recipe, overwrite), single_level(recipe)
    with runner.locked(planned):  # the report too is written under the folder's lock
        dense, levels = runner.run(planned)

        def write_report() -> None:
            report = RunReport(recipe, dense, levels)
            report.save(recipe.output_dir)
            write_control_records(recipe.output_dir, planned, report)

        distributed.main_only(write_report)
    return dense, levels
