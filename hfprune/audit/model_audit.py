"""Auditing one saved or in-memory model: TextAttack robustness, loyalty to the dense model, privacy leakage.

Shared by ``hfprune run`` / ``sweep`` (every stage audits its model, with the plan its recipe describes) and
``hfprune audit`` (any saved model, with the plan its flags describe: :mod:`hfprune.audit.saved_model`); this
module never sees a recipe. Each
model is audited on its own so a finished stage never needs recomputing: every model of a run is attacked on the
same seeded sample with the same query budget, and scored for membership on the same recorded split, so results of
different stages compare. The typed results (``hfprune.audit.results``) go to ``audit.json``; the detailed
per-recipe and privacy reports go beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from hfprune.audit.results import LoyaltyResult, RobustnessResult
from hfprune.errors import ConfigError
from hfprune.utils.config import VERSION_KEY
from hfprune.utils.io import (
    atomic_write_json,
    atomic_write_text,
)
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from hfprune.audit.compare import Comparison
    from hfprune.audit.privacy.audit import ShadowModels
    from hfprune.audit.privacy.canaries import CanarySet
    from hfprune.audit.privacy.report import PrivacyEntry
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.audit.robustness import AuditTarget

logger = get_logger(__name__)

AUDIT_JSON = "audit.json"
AUDIT_MARKDOWN = "audit.md"

# privacy audit name -> PrivacyAuditConfig settings it turns on (membership inference always runs)
PRIVACY_AUDITS: dict[str, dict[str, bool]] = {
    "mia": {},
    "extraction": {"extraction": True},
    "exposure": {"canary_exposure": True},
}


@dataclass
class AuditPlan:
    """What to audit and how hard: the same plan for every model of a run."""

    dataset: str
    split: str
    max_length: int = 64
    recipes: list[str] = field(default_factory=list)
    n_examples: dict[str, int] = field(default_factory=dict)
    query_budget: int | None = 300
    n_loyalty_examples: int | None = 500
    robustness_seed: int = 0
    privacy: list[str] = field(default_factory=list)
    mia_attacks: list[str] = field(default_factory=list)
    n_resamples: int = 1000
    privacy_resamples: int = 1000
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [name for name in self.privacy if name not in PRIVACY_AUDITS]
        if unknown:
            raise ConfigError(f"privacy: expected names from {sorted(PRIVACY_AUDITS)}, got {unknown}")

    def attack_config(self, recipe: str) -> Any:
        """The ``AuditConfig`` of one recipe (transfer off: each model is audited on its own)."""
        return self._robustness_config(recipes=[recipe], n_examples=self.n_examples.get(recipe, 50))

    def loyalty_config(self) -> Any:
        """The ``AuditConfig`` of the loyalty pass alone (no recipe is attacked with it)."""
        return self._robustness_config()

    def _robustness_config(self, **recipe: Any) -> Any:
        from hfprune.audit.robustness import AuditConfig

        return AuditConfig(
            **recipe, dataset=self.dataset, split=self.split,
            query_budget=self.query_budget, seed=self.robustness_seed, n_loyalty_examples=self.n_loyalty_examples,
            max_length=self.max_length, transfer=False, n_resamples=self.n_resamples, progress=self.progress,
        )

    def check_resources(self) -> None:
        """Every attack recipe's resources are on this machine (raises MissingResourceError naming the missing)."""
        from hfprune.audit.robustness import resolve_recipe

        for name in self.recipes:
            resolve_recipe(name)


@dataclass
class ModelAudit:
    """Everything audited for one model; the typed results reports, plots and model cards read."""

    model_name: str
    sparsity: float
    robustness: list[RobustnessResult] = field(default_factory=list)
    loyalty: LoyaltyResult | None = None
    privacy: PrivacyEntry | None = None
    seconds: float = 0.0
    dataset: str | None = None
    split: str | None = None
    comparison: list[Comparison] = field(default_factory=list)  # paired tests against --reference, decided

    def attack_success_rates(self) -> dict[str, float]:
        """Recipe -> attack success rate."""
        return {r.recipe: r.attack_success_rate.value for r in self.robustness}

    def strongest_mia(self) -> tuple[str, float] | None:
        """(attack, AUC) of the membership attack with the highest AUC: the conservative privacy figure."""
        if self.privacy is None or not self.privacy.membership:
            return None
        best = max(self.privacy.membership, key=lambda r: -math.inf if math.isnan(r.auc.value) else r.auc.value)
        return best.attack, best.auc.value

    def max_exposure(self) -> tuple[int, float] | None:
        """(repetitions, mean exposure) of the most repeated canaries."""
        if self.privacy is None or not self.privacy.exposure:
            return None
        top = max(self.privacy.exposure, key=lambda r: r.repetitions)
        return top.repetitions, top.mean_exposure.value

    def to_dict(self) -> dict[str, Any]:
        from hfprune import __version__

        return {
            "kind": "model_audit", VERSION_KEY: __version__, "model_name": self.model_name,
            "sparsity": self.sparsity, "robustness": [r.to_dict() for r in self.robustness],
            "loyalty": None if self.loyalty is None else self.loyalty.to_dict(),
            "privacy": None if self.privacy is None else self.privacy.to_dict(), "seconds": round(self.seconds, 3),
            "dataset": self.dataset, "split": self.split, "comparison": [c.to_dict() for c in self.comparison],
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        from hfprune.audit.compare import Comparison
        from hfprune.audit.privacy.report import PrivacyEntry

        expected = {"kind", VERSION_KEY, "model_name", "sparsity", "robustness", "loyalty", "privacy", "seconds",
                    "dataset", "split"}
        # "comparison" is optional: audits saved before --reference compared the models lack it
        if not isinstance(payload, dict) or payload.get("kind") != "model_audit" or not (
            expected <= set(payload) <= expected | {"comparison"}
        ):
            raise ConfigError(f"audit: expected a model_audit mapping with keys {sorted(expected)} (and comparison)")
        return cls(
            payload["model_name"], float(payload["sparsity"]),
            [RobustnessResult.from_dict(r) for r in payload["robustness"]],
            None if payload["loyalty"] is None else LoyaltyResult.from_dict(payload["loyalty"]),
            None if payload["privacy"] is None else PrivacyEntry.from_dict(payload["privacy"]),
            float(payload["seconds"]), payload["dataset"], payload["split"],
            [Comparison.from_dict(c) for c in payload.get("comparison") or []],
        )

    def to_markdown(self) -> str:
        from hfprune.audit.privacy.report import PrivacyReport
        from hfprune.audit.results import results_to_markdown

        lines = [f"# Audit of {self.model_name}", "", f"Sparsity (parameters removed): {100 * self.sparsity:.1f}%", ""]
        if self.comparison:
            from hfprune.audit.compare import changes_markdown

            lines += [changes_markdown({self.model_name: self.comparison}).replace(
                "## What pruning changed", "## Against the reference model", 1)]
        if self.robustness:
            lines += ["## Adversarial robustness", "", results_to_markdown(self.robustness)]
        if self.loyalty is not None:
            lines += ["## Loyalty to the dense model", "", results_to_markdown([self.loyalty])]
        if self.privacy is not None:
            body = PrivacyReport([self.privacy]).to_markdown().split("\n", 2)[2]  # drop its title
            lines += ["## Privacy", "", body]
        lines += [f"Audit time: {self.seconds:.0f} s", ""]
        return "\n".join(lines)

    def save(self, directory: str | Path) -> Path:
        """Write ``audit.json`` and ``audit.md`` into ``directory``."""
        directory = Path(directory)
        atomic_write_json(directory / AUDIT_JSON, self.to_dict())
        atomic_write_text(directory / AUDIT_MARKDOWN, self.to_markdown())
        return directory / AUDIT_JSON


@dataclass
class LoadedModel:
    """A saved model ready to audit, with what its training run recorded (split and canaries, when present)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    task: str
    split: MembershipSplit | None
    canaries: CanarySet | None
    path: str


# model class name suffix -> task (for models saved without a membership split)
TASK_BY_CLASS_SUFFIX = {"ForSequenceClassification": "sequence-classification", "LMHeadModel": "causal-lm",
                        "ForCausalLM": "causal-lm"}


def load_model_dir(directory: str | Path, split_from: str | Path | None = None, device: str = "auto") -> LoadedModel:
    """Load a saved dense or pruned model (``load_pruned`` when its config records a pruned structure) onto
    ``device`` (:func:`hfprune.training_args.resolve_device`: evaluation, attacks and privacy scores all follow the
    model's device) and, when recorded beside it (or in ``split_from``), its membership split and canaries."""
    import json

    from hfprune.audit.privacy.canaries import CANARY_FILE, CanarySet
    from hfprune.audit.privacy.runs import load_run
    from hfprune.audit.privacy.split import SPLIT_FILE

    path = Path(directory)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"MODEL_DIR: {path} is not a saved model directory (no config.json)")
    recorded = Path(split_from) if split_from is not None else path
    if (recorded / SPLIT_FILE).is_file():
        run = load_run(path, split_from=split_from, device=device)
        return LoadedModel(run.model, run.tokenizer, run.split.task, run.split, run.canaries, str(path))
    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.pruning.serialization import load_pruned
    from hfprune.pruning.structure import CONFIG_KEY

    payload = json.loads(config_file.read_text(encoding="utf-8"))
    names = payload.get("architectures") or [""]
    task = next((t for suffix, t in TASK_BY_CLASS_SUFFIX.items() if names[0].endswith(suffix)), None)
    if task is None:
        raise ConfigError(f"MODEL_DIR: {path} holds a {names[0] or 'model of unknown class'}; expected a sequence "
                          "classifier or a causal LM")
    from hfprune.training_args import process_device

    model = load_pruned(path) if payload.get(CONFIG_KEY) else load_model_for_task(path, task)
    model = model.to(process_device(device))
    tokenizer = load_tokenizer(path)
    canaries = CanarySet.load(recorded) if (recorded / CANARY_FILE).is_file() else None
    return LoadedModel(model.eval(), tokenizer, task, None, canaries, str(path))


def load_audit(directory: str | Path) -> ModelAudit:
    import json

    path = Path(directory) / AUDIT_JSON
    try:
        return ModelAudit.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read an audit ({exc})") from None


# ------------------------------------------------------------------------------------------------------- running
def robustness_audit(
    plan: AuditPlan, target: AuditTarget, reference: AuditTarget | None, out: Path, dataset: Any = None
) -> tuple[list[RobustnessResult], LoyaltyResult | None]:
    """Attack ``target`` with every recipe of the plan (one report folder per recipe under ``out``), and measure
    its loyalty to ``reference`` when given (once: the loyalty sample does not depend on the recipe)."""
    from hfprune.audit.robustness import RobustnessAudit

    results: list[RobustnessResult] = []
    loyalty = None
    if reference is not None and not plan.recipes:  # no attack, but loyalty to the reference still measured
        from hfprune.audit.robustness import LoyaltyProbe

        config = plan.loyalty_config()
        loyalty = LoyaltyProbe(reference, config)(target, loyalty_sample(plan, dataset))
    for name in plan.recipes:
        audit = RobustnessAudit(plan.attack_config(name))
        dataset = audit.load_dataset() if dataset is None else dataset
        report = audit.attack(target, dataset, reference=reference if loyalty is None else None)
        report.save(out / name, plots=False, config=False)
        results += report.robustness
        loyalty = report.loyalty[0] if loyalty is None and report.loyalty else loyalty
    return results, loyalty


def loyalty_sample(plan: AuditPlan, dataset: Any) -> Any:
    """The seeded clean sample loyalty (and the paired accuracy test) is measured on: ``n_loyalty_examples``."""
    from hfprune.audit.robustness.sample import draw_sample

    config = plan.loyalty_config()
    return draw_sample(dataset, config.n_loyalty_examples, config.seed, config.text_columns, config.label_column)


def privacy_audit(
    plan: AuditPlan, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: MembershipSplit,
    canaries: CanarySet | None, name: str, sparsity: float, out: Path, shadows: ShadowModels | None = None,
) -> PrivacyEntry:
    """Membership inference (and, for LMs, extraction ranking and canary exposure) on the recorded split; with
    ``shadows``, the reference (the first shadow) and LiRA attacks compare against them."""
    from hfprune.audit.privacy.audit import PrivacyAuditConfig, audit_model, reference_stats
    from hfprune.audit.privacy.report import PrivacyReport

    settings: dict[str, Any] = {"extraction": False, "canary_exposure": False}
    for audit in plan.privacy:
        settings.update(PRIVACY_AUDITS[audit])
    config = PrivacyAuditConfig(attacks=list(plan.mia_attacks), n_resamples=plan.privacy_resamples,
                                max_length=plan.max_length, **settings)
    logger.info("privacy audit of %s: %d members, %d non-members", name, split.n_members, split.n_nonmembers)
    shadow_stats = [] if shadows is None else reference_stats(shadows.directories, split, config)
    entry = audit_model(model, tokenizer, split, model_name=name, config=config, sparsity=sparsity,
                        reference=shadow_stats[0] if shadow_stats else None, shadows=shadow_stats,
                        canaries=canaries if settings["canary_exposure"] else None)
    entry.shadows = None if shadows is None else shadows.used()
    PrivacyReport([entry], title=f"Privacy audit of {name}").save(out, plots=False, config=config)
    return entry


def run_model_audit(
    plan: AuditPlan,
    target: AuditTarget,
    out: Path,
    *,
    reference: AuditTarget | None = None,
    split: MembershipSplit | None = None,
    canaries: CanarySet | None = None,
    dataset: Any = None,
    step: Callable[[str], None] | None = None,
    shadows: ShadowModels | None = None,
) -> ModelAudit:
    """Run the plan on ``target`` and save ``audit.json`` / ``audit.md`` (plus detailed reports) into ``out``;
    ``shadows`` feed the reference and LiRA membership attacks."""
    import time

    started = time.perf_counter()
    sparsity = target.sparsity if target.sparsity is not None else target.measured_sparsity("params")
    result = ModelAudit(target.name, sparsity, dataset=plan.dataset, split=plan.split)
    if plan.recipes or (reference is not None and dataset is not None):
        if step:
            step(f"robustness audit of {target.name} ({', '.join(plan.recipes) or 'loyalty only'})")
        result.robustness, result.loyalty = robustness_audit(plan, target, reference, out / "robustness", dataset)
    if plan.privacy:
        if split is None:
            raise ConfigError(f"privacy: {target.name} has no recorded membership split (membership_split.json)")
        if step:
            step(f"privacy audit of {target.name} ({', '.join(plan.privacy)})")
        result.privacy = privacy_audit(plan, target.model, target.tokenizer, split, canaries, target.name, sparsity,
                                       out / "privacy", shadows)
    result.seconds = time.perf_counter() - started
    result.save(out)
    return result
