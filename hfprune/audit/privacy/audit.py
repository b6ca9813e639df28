"""Running the privacy audit on one model: statistics on the recorded split, the train/held-out gap, the
membership attacks, the extraction signal and canary exposure, gathered in a :class:`PrivacyEntry`.

Reference and shadow statistics (``model_stats`` of :class:`ShadowModels`) are passed to each audited model: dense
shadows serve the dense model and its pruned copies alike, or each model gets shadows trained its own way (``hfprune
run`` with ``audits.privacy.shadows: target``); the report names which (:class:`~.report.ShadowsUsed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hfprune.audit.privacy.canaries import EXPOSURE_METHODS, CanaryExposureProbe, CanaryInputs, CanarySet
from hfprune.audit.privacy.probes import (
    VARIANCES,
    LiRAAttack,
    MembershipAttack,
    MembershipInputs,
    applicable_attacks,
    attack_names,
    get_probe,
)
from hfprune.audit.privacy.report import GeneralizationGap, PrivacyEntry, ShadowsUsed
from hfprune.audit.privacy.scores import ExampleStats, causal_lm_stats, classifier_stats
from hfprune.audit.privacy.split import MembershipSplit
from hfprune.errors import ConfigError
from hfprune.utils.config import ConfigMixin, check_choice, check_int, field_help
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)


@dataclass
class PrivacyAuditConfig(ConfigMixin):
    """Settings of a privacy audit (which attacks, how many bootstrap resamples, how exposure is computed)."""

    config_file_name = "hfprune_privacy_audit.json"

    attacks: list[str] = field_help([], "membership attacks to run (empty: every one whose inputs are given: loss, "
                                    "confidence, entropy; reference with a reference model; lira with >= 2 shadows)")
    extraction: bool = field_help(True, "causal LMs: rank members vs non-members by perplexity and perplexity/zlib")
    canary_exposure: bool = field_help(True, "causal LMs with recorded canaries: measure their exposure")
    batch_size: int = field_help(32, "examples per forward pass when scoring")
    max_length: int | None = field_help(None, "truncate audited texts to this many tokens (None: the split's)")
    n_resamples: int = field_help(1000, "bootstrap resamples for confidence intervals (0: no intervals)")
    confidence: float = field_help(0.95, "confidence level of the bootstrap intervals")
    seed: int = field_help(0, "seed of the bootstrap and of the sampled exposure candidates")
    keep_roc: bool = field_help(True, "store every ROC point in the results (needed for ROC plots)")
    lira_variance: str = field_help("global", "LiRA: 'global' (one sigma, for few shadows) or 'per_example'")
    exposure_method: str = field_help("auto", "'exact' (enumerate R), 'skewnorm' (distribution fit) or 'auto'")
    exact_exposure_max_space: int = field_help(10_000, "auto: enumerate R exactly up to this many candidates")
    exposure_samples: int = field_help(5_000, "skewnorm: random candidates the distribution is fitted to")
    exposure_batch_size: int = field_help(256, "canary candidates per forward pass")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.attacks, list) or not all(isinstance(a, str) for a in self.attacks):
            raise ConfigError(f"{owner}.attacks: expected a list of attack names, got {self.attacks!r}")
        unknown = sorted(set(self.attacks) - set(attack_names("membership")))
        if unknown:
            raise ConfigError(f"{owner}.attacks: expected names from {sorted(attack_names('membership'))}, "
                              f"got {unknown}")
        for name, minimum in (("batch_size", 1), ("n_resamples", 0), ("seed", 0), ("exact_exposure_max_space", 1),
                              ("exposure_samples", 10), ("exposure_batch_size", 1)):
            check_int(owner, name, getattr(self, name), minimum=minimum)
        if self.max_length is not None:
            check_int(owner, "max_length", self.max_length, minimum=2)
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, float) or not 0 < self.confidence < 1:
            raise ConfigError(f"{owner}.confidence: expected a number in (0, 1), got {self.confidence!r}")
        check_choice(owner, "lira_variance", self.lira_variance, VARIANCES)
        check_choice(owner, "exposure_method", self.exposure_method, EXPOSURE_METHODS)
        for name in ("extraction", "canary_exposure", "keep_roc"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{owner}.{name}: expected true or false, got {getattr(self, name)!r}")

    def attack_kwargs(self) -> dict[str, object]:
        return {"n_resamples": self.n_resamples, "confidence": self.confidence, "seed": self.seed,
                "keep_roc": self.keep_roc}


# --------------------------------------------------------------------------------------------- statistics by task
StatsFn = Callable[["PreTrainedModel", "PreTrainedTokenizerBase", MembershipSplit, int, "int | None"], ExampleStats]


def _classifier(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: MembershipSplit,
                batch_size: int, max_length: int | None) -> ExampleStats:
    if split.labels is None:
        raise ConfigError("MembershipSplit.member_labels: a classifier audit needs the labels of the examples")
    return classifier_stats(model, tokenizer, split.texts, split.labels, batch_size, max_length)


def _causal_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: MembershipSplit,
               batch_size: int, max_length: int | None) -> ExampleStats:
    return causal_lm_stats(model, tokenizer, split.texts, batch_size, max_length)


STATS_BY_TASK: dict[str, StatsFn] = {"sequence-classification": _classifier, "causal-lm": _causal_lm}
ACCURACY_KIND = {"sequence-classification": "label accuracy", "causal-lm": "next-token accuracy"}


def model_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: MembershipSplit,
    config: PrivacyAuditConfig | None = None,
) -> ExampleStats:
    """Per-example statistics of ``model`` on the split's members then non-members, as its task defines them."""
    config = config or PrivacyAuditConfig()
    if split.task not in STATS_BY_TASK:
        raise ConfigError(f"MembershipSplit.task: expected one of {sorted(STATS_BY_TASK)}, got {split.task!r}")
    max_length = config.max_length or split.max_length
    return STATS_BY_TASK[split.task](model, tokenizer, split, config.batch_size, max_length)


def generalization_gap(stats: ExampleStats, is_member: np.ndarray, task: str) -> GeneralizationGap:
    """Train (member) vs held-out (non-member) accuracy and loss; LM figures are averaged over tokens."""
    member = np.asarray(is_member, dtype=bool)
    weights = stats.n_tokens if stats.n_tokens is not None else np.ones(len(stats))

    def mean(values: np.ndarray, rows: np.ndarray) -> float:
        return float(np.average(values[rows], weights=weights[rows]))

    return GeneralizationGap(
        train_accuracy=mean(stats.correct, member), heldout_accuracy=mean(stats.correct, ~member),
        train_loss=mean(stats.loss, member), heldout_loss=mean(stats.loss, ~member),
        n_members=int(member.sum()), n_nonmembers=int((~member).sum()),
        accuracy_kind=ACCURACY_KIND.get(task, "accuracy"),
    )


# the privacy audit's sparsity axis when none is given: transformer-layer FLOPs removed (the robustness audit and
# hfprune run default to "params"; both name their measure from hfprune.audit.sparsity)
PRIVACY_SPARSITY_MEASURE = "flops"


def measured_sparsity(model: PreTrainedModel, name: str = "model") -> float:
    """The ``PRIVACY_SPARSITY_MEASURE`` sparsity of ``model``; an architecture hfprune cannot measure is an error
    naming ``name`` (pass ``sparsity`` to :func:`audit_model` for those)."""
    from hfprune.audit.sparsity import measure_sparsity

    return measure_sparsity(model, PRIVACY_SPARSITY_MEASURE, name, "audit_model sparsity")


# -------------------------------------------------------------------------------------------------------- running
def audit_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: MembershipSplit,
    *,
    model_name: str,
    config: PrivacyAuditConfig | None = None,
    sparsity: float | None = None,
    reference: ExampleStats | None = None,
    shadows: Sequence[ExampleStats] = (),
    canaries: CanarySet | None = None,
) -> PrivacyEntry:
    """Audit one model on its recorded split: gap, membership attacks, and for causal LMs extraction and exposure.

    ``reference``/``shadows`` are :func:`model_stats` of models that never saw an audited example; ``sparsity``
    defaults to :func:`measured_sparsity`.
    """
    config = config or PrivacyAuditConfig()
    sparsity = measured_sparsity(model, model_name) if sparsity is None else sparsity
    stats = model_stats(model, tokenizer, split, config)
    inputs = MembershipInputs(stats, split.is_member, model_name, sparsity, reference, tuple(shadows))
    entry = PrivacyEntry(model_name, sparsity, generalization_gap(stats, split.is_member, split.task))
    logger.info("%s: train/held-out %s %.3f / %.3f, loss %.3f / %.3f", model_name, entry.gap.accuracy_kind,
                entry.gap.train_accuracy, entry.gap.heldout_accuracy, entry.gap.train_loss, entry.gap.heldout_loss)
    entry.membership = [_attack(name, config)(inputs) for name in applicable_attacks(inputs, config.attacks)]
    for result in entry.membership:
        logger.info("%s: %s attack AUC %s", model_name, result.attack, result.auc.format())
    if split.task == "causal-lm" and config.extraction:
        entry.extraction = [_attack(name, config)(inputs) for name in applicable_attacks(inputs, family="extraction")]
    if split.task == "causal-lm" and config.canary_exposure and canaries is not None:
        entry.exposure = _exposure_probe(config)(CanaryInputs(model, tokenizer, canaries, model_name, sparsity))
    return entry


def _attack(name: str, config: PrivacyAuditConfig) -> MembershipAttack:
    kwargs = config.attack_kwargs()
    if name == LiRAAttack.name:
        kwargs["variance"] = config.lira_variance
    return get_probe(name, **kwargs)  # type: ignore[return-value]


def _exposure_probe(config: PrivacyAuditConfig) -> CanaryExposureProbe:
    return CanaryExposureProbe(
        method=config.exposure_method, exact_max_space=config.exact_exposure_max_space,
        n_samples=config.exposure_samples, batch_size=config.exposure_batch_size,
        n_resamples=config.n_resamples, confidence=config.confidence, seed=config.seed,
    )


@dataclass(frozen=True)
class ShadowModels:
    """Saved models trained on examples disjoint from the audited ones (the first doubles as the reference model),
    and how they were trained (a key of :data:`~hfprune.audit.privacy.report.SHADOW_MODES`, named in the report)."""

    directories: list[str]
    trained_as: str

    def __post_init__(self) -> None:
        if not self.directories:
            raise ConfigError("ShadowModels.directories: expected at least one saved model directory")
        self.used()  # validates trained_as

    def used(self) -> ShadowsUsed:
        return ShadowsUsed(len(self.directories), self.trained_as)


def reference_stats(
    directories: Sequence[str | os.PathLike], split: MembershipSplit, config: PrivacyAuditConfig | None = None,
    device: str = "auto",
) -> list[ExampleStats]:
    """:func:`model_stats` of saved reference or shadow models on the target's split (loaded one at a time onto
    ``device``, the audited model's: :func:`hfprune.training_args.resolve_device`)."""
    from hfprune.audit.privacy.runs import load_run

    stats = []
    for directory in directories:
        run = load_run(directory, device=device)
        if run.split.task != split.task:
            raise ConfigError(f"{directory}: a {run.split.task} model cannot score a {split.task} split")
        same_source = (run.split.dataset, run.split.source_split) == (split.dataset, split.source_split)
        overlap = set(run.split.member_ids) & {*split.member_ids, *split.nonmember_ids} if same_source else set()
        if overlap:
            raise ConfigError(f"{Path(directory)}: trained on {len(overlap)} audited examples; a reference or "
                              "shadow model must never see them")
        stats.append(model_stats(run.model, run.tokenizer, split, config))
    return stats


def pretrained_reference_stats(
    name_or_path: str, split: MembershipSplit, config: PrivacyAuditConfig | None = None, device: str = "auto",
) -> ExampleStats:
    """:func:`model_stats` of a pretrained model before fine-tuning (e.g. ``gpt2`` from the Hub for a model
    fine-tuned by ``train_canary_lm(base_model="gpt2")``): the reference that never saw the members, scored on
    ``device`` (the audited model's)."""
    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.training_args import process_device

    tokenizer = load_tokenizer(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model_for_task(name_or_path, split.task).to(process_device(device))
    return model_stats(model.eval(), tokenizer, split, config)
