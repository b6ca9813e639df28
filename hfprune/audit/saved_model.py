"""``hfprune audit``: auditing any saved model with the plan its flags describe, every check before the first
write, optionally against a reference model with paired tests; the audit itself is
:func:`hfprune.audit.model_audit.run_model_audit`, as in every stage of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.audit.model_audit import (
    AUDIT_JSON,
    AuditPlan,
    LoadedModel,
    ModelAudit,
    load_model_dir,
    loyalty_sample,
    run_model_audit,
)
from hfprune.errors import ConfigError
from hfprune.utils.io import refuse_inputs_inside, refuse_symlink, staged_folder
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.audit.compare import Comparison
    from hfprune.audit.privacy.audit import ShadowModels
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.audit.robustness import AuditTarget

logger = get_logger(__name__)

# trains, into the folder and disjoint from the split, the audited model's shadows and the reference's (None: the
# reference is audited without): ``hfprune audit --shadows`` (hfprune.pipeline.audit_shadows)
ShadowTrainer = Callable[["MembershipSplit", Path], "tuple[ShadowModels, ShadowModels | None]"]
SHADOWS_DIR = "shadows"


def audit_saved_model(
    model_dir: str | Path,
    plan: AuditPlan,
    out: str | Path,
    *,
    name: str | None = None,
    reference_dir: str | Path | None = None,
    split_from: str | Path | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    members: Callable[[str], MembershipSplit] | None = None,
    mia_optional: bool = False,
    device: str = "auto",
    shadows: ShadowTrainer | None = None,
) -> ModelAudit:
    """Audit any saved model (``hfprune audit``) on ``device`` (:func:`hfprune.training_args.resolve_device`): every
    check first, then the audit in a staging folder that is renamed to ``out`` once ``audit.json`` and the reports
    are complete.

    ``members`` builds the member set from the model's task (``--members`` / ``--members-file``), replacing a
    recorded split. ``mia_optional``: without any member set, skip membership inference with a notice instead of
    failing. With ``reference_dir``, the reference is audited with the same plan on the same examples and member
    set (into ``out/reference``), and the paired tests against it go into this audit's report. ``shadows`` trains
    the shadow models of the reference and LiRA attacks into ``out/shadows`` first.
    """
    from hfprune.training import torch_threads
    from hfprune.training_args import resolve_device

    resolve_device(device, "--device")  # an unknown or absent device is an error before anything is read

    out = Path(out)
    _check_audit_out(out, overwrite)
    from hfprune.data.paths import data_dir

    refuse_inputs_inside(out, {"MODEL_DIR": model_dir, "--reference": reference_dir, "--split-from": split_from,
                               "--data": plan.dataset, "the data folder": str(data_dir())}, "--out")
    loaded = load_model_dir(model_dir, split_from, device)
    if members is not None:
        loaded.split = members(loaded.task)
    plan = _check_plan_fits(plan, loaded, mia_optional, reference_dir is not None)
    if shadows is not None and ("mia" not in plan.privacy or loaded.split is None):
        raise ConfigError("--shadows: shadow models serve membership inference; expected --privacy with mia and the "
                          "member split the run recorded")
    reference = load_model_dir(reference_dir, device=device) if reference_dir is not None else None
    if reference is not None and reference.task != loaded.task:
        raise ConfigError(f"--reference: {reference_dir} is a {reference.task} model; MODEL_DIR is a {loaded.task}")
    dataset = _audit_dataset(plan, reference is not None and loaded.task == "sequence-classification")
    label = name or (Path(model_dir).resolve().parent.name if Path(model_dir).name == "model" else Path(model_dir).name)
    with staged_folder(out) as staging, torch_threads(threads):
        target, ref = _target(label, loaded), None if reference is None else _target("reference", reference)
        step = lambda message: logger.info("%s", message)  # noqa: E731
        trained, ref_shadows = (None, None) if shadows is None else shadows(loaded.split, staging / SHADOWS_DIR)
        result = run_model_audit(plan, target, staging, reference=ref if dataset is not None else None,
                                 split=loaded.split, canaries=loaded.canaries, dataset=dataset, step=step,
                                 shadows=trained)
        if plan.privacy and loaded.split is not None:
            loaded.split.save(staging)  # the member set this audit used, whichever way it was named
        if ref is not None:
            ref_audit = run_model_audit(plan, ref, staging / "reference", split=loaded.split,
                                        canaries=getattr(reference, "canaries", None), dataset=dataset, step=step,
                                        shadows=ref_shadows)
            result.comparison = _paired_tests(plan, target, ref, dataset, result, ref_audit)
            result.save(staging)
    return result


def _target(name: str, loaded: LoadedModel) -> AuditTarget:
    """An audit target with its measured sparsity, so every report of it (attack logs too) shows the same figure."""
    from hfprune.audit.robustness import AuditTarget

    target = AuditTarget(name, loaded.model, loaded.tokenizer)
    return AuditTarget(name, loaded.model, loaded.tokenizer, sparsity=target.measured_sparsity("params"))


def _paired_tests(
    plan: AuditPlan, target: AuditTarget, reference: AuditTarget, dataset: Any, audit: ModelAudit,
    reference_audit: ModelAudit,
) -> list[Comparison]:
    """Exact McNemar (accuracy on the loyalty sample, attack outcome), DeLong (MIA AUC), Holm across them."""
    from hfprune.audit.compare import PairedRecords, compare_models, decide

    qualities: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)
    if dataset is not None:
        sample = loyalty_sample(plan, dataset)
        qualities = accuracy_record(reference, sample, plan), accuracy_record(target, sample, plan)
    return decide(compare_models(PairedRecords.of(qualities[0], reference_audit),
                                 PairedRecords.of(qualities[1], audit)))


def _check_audit_out(out: Path, overwrite: bool) -> None:
    refuse_symlink(out, "--out", "a folder, not a link (an audit is never written or replaced through one)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        what = "already holds an audit" if (out / AUDIT_JSON).is_file() else "is not empty"
        raise ConfigError(f"--out: {out} {what}; choose another folder or pass --overwrite (replaced only once the "
                          "new audit is complete)")


def _check_plan_fits(
    plan: AuditPlan, loaded: LoadedModel, mia_optional: bool = False, has_reference: bool = False
) -> AuditPlan:
    """The requested audits apply to this model and what its run recorded; the plan to run (membership inference
    dropped, with a notice, when it was only the default and no member set is known)."""
    if plan.recipes and loaded.task != "sequence-classification":
        raise ConfigError(f"--robustness: TextAttack recipes attack classifiers; {loaded.path} is a {loaded.task} "
                          "model (use --robustness none)")
    if plan.privacy and loaded.split is None and mia_optional:
        if not plan.recipes and not has_reference:
            raise ConfigError("--robustness none and no member set for --privacy: nothing to audit (pass --members "
                              "DATASET[:SPLIT[:N]] or --members-file FILE)")
        logger.warning("membership inference skipped: %s has no membership_split.json (name the members with "
                       "--members DATASET[:SPLIT[:N]] or --members-file FILE)", loaded.path)
        plan = replace(plan, privacy=[])
    if plan.privacy and loaded.split is None:
        raise ConfigError(f"--privacy: {loaded.path} has no membership_split.json; membership inference needs its "
                          "member set: pass --members DATASET[:SPLIT[:N]] or --members-file FILE (or --split-from "
                          "DIR of the dense run, or --privacy none)")
    if loaded.task != "causal-lm" and {"exposure", "extraction"} & set(plan.privacy):
        raise ConfigError("--privacy: exposure and extraction audit causal LMs; expected mia for a classifier")
    if "exposure" in plan.privacy and loaded.canaries is None:
        raise ConfigError(f"--privacy exposure: no canaries.json recorded for {loaded.path}")
    plan.check_resources()
    return plan


def _audit_dataset(plan: AuditPlan, for_reference: bool = False) -> Any:
    """The split attacked, and scored for loyalty to a reference (loaded once, checked before anything is
    written)."""
    if not plan.recipes and not for_reference:
        return None
    from hfprune.data import load_dataset
    from hfprune.data.columns import check_layout
    from hfprune.errors import DataError

    try:
        rows = load_dataset(plan.dataset, plan.split)
    except (DataError, ValueError) as exc:
        raise DataError(f"--data: {exc}") from None
    check_layout(plan.dataset, {plan.split: rows}, key="--data")
    return rows


def accuracy_record(target: AuditTarget, sample: Any, plan: AuditPlan) -> dict[str, Any]:
    """Per-example correctness of ``target`` on ``sample``: the quality record the paired McNemar test reads."""
    import numpy as np

    config = plan.loyalty_config()
    probabilities = target.predictor(config.batch_size, config.max_length).predict_proba(
        sample.model_inputs(), progress=config.progress)
    correct = (np.argmax(probabilities, axis=1) == np.asarray(sample.labels)).astype(int).tolist()
    return {"metric": "accuracy", "value": float(np.mean(correct)), "n_examples": len(correct), "per_example": correct}
