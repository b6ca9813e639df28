"""Running a recipe: checks, then stages (dense, then each pruned level), then the report.

Order of work, and why:

1. ``preflight``: the model loads here, the dataset and its splits exist and are large enough, the attack recipes'
   resources are on disk, and any finished stages in the output folder came from this recipe. Nothing is written
   until all of that holds, so a bad recipe leaves no partial output.
2. Stages. Each is built in a hidden staging folder beside its final place; its ``stage.json`` (the done-marker,
   holding the stage's results) is written last, atomically, and the folder is then renamed into place. A stage
   whose marker exists and matches the recipe is reused, never recomputed: an interrupted run or sweep resumes.
3. The report is rebuilt from the markers (``report.md``, ``report.json``, PNG plots).

Nothing is written outside the run folder, and a model already there is never overwritten in place (``--overwrite``
swaps a finished stage for its recomputed version only once the new one is complete).

Launched on several processes (``accelerate launch -m hfprune run``), every process takes its share of each stage's
training; the main process alone checks, locks, evaluates, audits and writes, and the others wait for it and read
its stage markers (:mod:`hfprune.utils.distributed`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.audit.model_audit import AuditPlan
from hfprune.errors import ConfigError, DataError, HfpruneError
from hfprune.pipeline.results import DENSE_STAGE, STAGE_FILE, Level, StageResult
from hfprune.utils import distributed
from hfprune.utils.config import fingerprint
from hfprune.utils.io import (
    atomic_write_json,
    contained_path,
    disk_full_reported,
    refuse_inputs_inside,
    refuse_links_within,
    staged_folder,
)
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.audit.model_audit import LoadedModel
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

RECIPE_FILE = "recipe.json"
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


def run_stage(stage_dir: Path, fingerprint: str, compute: Callable[[Path], StageResult],
              overwrite: bool = False, follow: Callable[[Path], Any] | None = None) -> tuple[StageResult, bool]:
    """The stage's result: read from its done-marker when finished with this ``fingerprint``, else computed into a
    staging folder, marked done (marker last) and renamed into place. Returns (result, computed).

    Under a launch the main process decides and computes; every other process runs ``follow`` (its share of the
    stage's training, in a private scratch folder; a no-op for a stage that trains nothing, but named: a stage
    without it is refused under a launch rather than leaving the main process's training waiting for the others),
    waits for the main process to publish the stage and reads it."""
    if distributed.launched() and follow is None:
        raise ConfigError(f"{stage_dir.name}: this stage cannot run on {distributed.world_size()} launched processes "
                          "(it names no part for the other processes to train); run it in one process")
    finished = distributed.main_only(lambda: _finished_stage(stage_dir, fingerprint, overwrite))
    if finished is not None:
        return finished, False
    # staged_folder also removes what an interrupted run of this stage left
    with disk_full_reported(stage_dir), distributed.main_writes(lambda: staged_folder(stage_dir)) as staging:
        if distributed.is_main():
            result = compute(staging)
            atomic_write_json(staging / STAGE_FILE, result.to_dict())  # the done-marker: written last
        else:
            follow(staging)
    return (result if distributed.is_main() else StageResult.load(stage_dir)), True


def _finished_stage(stage_dir: Path, fingerprint: str, overwrite: bool) -> StageResult | None:
    """The stage's result when it finished earlier with this ``fingerprint``; None when it is to be computed."""
    if not (stage_dir / STAGE_FILE).is_file() or overwrite:
        return None
    result = StageResult.load(stage_dir)
    if result.fingerprint != fingerprint:
        raise ConfigError(f"{stage_dir}: computed from different settings; pass --overwrite to recompute it")
    logger.info("%s: finished earlier with the same settings; reusing it", stage_dir)
    return result


# ------------------------------------------------------------------------------------------------------ the runner
@contextlib.contextmanager
def data_dir_env(data_dir: str | None) -> Iterator[None]:
    """Point hfprune's dataset loader at ``data.data_dir`` for the block (the pipeline stages read HFPRUNE_DATA_DIR)."""
    from hfprune.data.paths import DATA_DIR_ENV

    if data_dir is None:
        yield
        return
    previous = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(Path(os.path.expanduser(data_dir)).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = previous


class Steps:
    """Numbered log lines with elapsed time, so a user can follow a long run."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.started
        logger.info("[step %d, %02d:%02d elapsed] %s", self.count, elapsed // 60, elapsed % 60, message)


class RecipeRunner:
    """Runs a recipe's dense stage and pruned levels in ``recipe.output_dir``; see the module docstring."""

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

    # ---- settings and fingerprints ----
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

    # ---- checks before anything is written ----
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

    # ---- stages ----
    @contextlib.contextmanager
    def locked(self, levels: list[Level]) -> Iterator[None]:
        """Preflight, then hold the output folder's lock (:mod:`hfprune.utils.lock`) for the block: a second run
        pointed at the same folder is refused instead of writing beside this one. Re-entrant. Under a launch the
        main process checks and locks; the others wait for its verdict and hold nothing."""
        from hfprune.training import resolve_device
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

        from hfprune.training import idle_cores, torch_threads

        distributed.main_only(lambda: atomic_write_json(self.root / RECIPE_FILE, {**self.recipe.to_dict(),
                                                                             "fingerprint": self.recipe.fingerprint()}))
        threads = self.recipe.training.threads or idle_cores()
        logger.info("running recipe %s in %s on %d CPU thread(s)", self.recipe.name, self.root, threads)
        with data_dir_env(self.recipe.data.data_dir), torch_threads(threads):
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


def single_level(recipe: Recipe) -> list[Level]:
    """``hfprune run``: one pruned model, with the recipe's own pruning settings, in ``pruned/``."""
    return [Level("pruned", None, recipe.pruning)]


def run_recipe(recipe: Recipe, overwrite: bool = False) -> tuple[StageResult, list[StageResult]]:
    """Run one recipe (dense + one pruned model) and write the report; returns the stage results."""
    from hfprune.pipeline.report import RunReport
    from hfprune.pipeline.seed_layout import check_layout, refuse_several_seeds

    refuse_several_seeds(recipe, "run_recipe")
    check_layout(recipe)
    runner = RecipeRunner(recipe, overwrite)
    with runner.locked(single_level(recipe)):  # the report too is written under the folder's lock
        dense, levels = runner.run(single_level(recipe))
        distributed.main_only(lambda: RunReport(recipe, dense, levels).save(recipe.output_dir))
    return dense, levels
