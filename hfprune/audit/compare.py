"""Paired dense-vs-pruned tests: both models are scored on the same examples, so compare them example by example.

Two separate intervals that overlap do not say "no change", and two that barely miss do not say "changed": the
paired test uses the correlation between the models' outcomes on each example, which makes it far more sensitive.

- accuracy: exact McNemar test (a binomial test on the discordant pairs);
- attack success, on the examples both models classify correctly: exact McNemar;
- membership-inference AUC, and an LM's extraction ranking's AUC: DeLong's test for two correlated ROC curves
  (DeLong et al. 1988), computed from scipy ranks (Sun & Xu 2014);
- canary exposure over the same canaries: Wilcoxon signed-rank test (scipy), with the Hodges-Lehmann median shift
  and the interval that inverts the test (:mod:`hfprune.audit.signed_rank`);
- any per-example loss: the same;
- the loss attack's members' and non-members' mean loss: paired t-tests (:func:`member_losses`), which say where a
  change in its AUC comes from.

Each returns a :class:`Comparison`; :func:`decide` applies Holm's correction across the comparisons of one report
and gives each a verdict word: *higher*, *lower* or *no detectable change* (pruned relative to dense).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from hfprune.audit import intervals, metrics, signed_rank
from hfprune.errors import ConfigError

if TYPE_CHECKING:
    from hfprune.audit.results import CanaryExposureResult, MembershipInferenceResult, RobustnessResult

VERDICTS = ("higher", "lower", "no detectable change")
LOSS_METRIC = "per-text loss (NLL, nats)"
# the two sides of the loss attack's AUC (its scores are -loss): the members' loss (how closely the model fits the
# examples it trained on) and the non-members' loss (how it does on unseen ones)
MEMBER_LOSS_METRICS = ("loss on members (nats)", "loss on non-members (nats)")
LOSS_ATTACK = "loss"  # the membership attack whose scores are -loss (hfprune.audit.privacy.probes)
EXTRACTION_METRIC = "extraction AUC"  # an LM's extraction ranking of members above non-members (privacy.extraction)
ALPHA = 0.05
CONTROL_GROUP = "(pruning itself: the same training, nothing pruned)"  # ends the name of a group against the control
CONTROL_NAMES = ("control", "pruned")  # how a line against the control (a level that prunes nothing) names its models
CONTROL_NOTE = (" The control (a sweep's sparsity-0 level, or control/ of hfprune run --control) trains as the pruned "
                "models do (the same epochs on the same examples, the same distillation) but prunes nothing, so each "
                "pruned model is also compared with it (\"control\"): that difference is what pruning itself "
                "changed, while a difference from the dense model also contains the extra training (e.g. more epochs "
                "on the members can raise the membership AUC by themselves).")
NO_CONTROL_NOTE = (" No control was trained: a difference from the dense model also contains the pruned model's extra "
                   "training (its pruning epochs on the same examples), which alone can change accuracy, robustness "
                   "and membership leakage; hfprune run --control trains one to separate the two.")


@dataclass(frozen=True)
class Comparison:
    """Pruned vs dense on one metric: both values, the difference (pruned - dense) with its interval, the test's
    p-value, and after :func:`decide` the Holm-adjusted p-value and the verdict.

    ``estimate`` names the difference when it is not simply pruned minus dense (the Wilcoxon comparisons give the
    Hodges-Lehmann median shift; ``dense`` and ``pruned`` are then each side's mean).
    """

    metric: str
    dense: float
    pruned: float
    difference: float
    low: float | None
    high: float | None
    p_value: float
    n: int
    test: str
    p_adjusted: float | None = None
    verdict: str | None = None
    estimate: str | None = None

    def __post_init__(self) -> None:
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ConfigError(f"Comparison.verdict: expected one of {list(VERDICTS)}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        fields = set(cls.__dataclass_fields__)
        if not isinstance(payload, dict) or not set(payload) <= fields:
            raise ConfigError(f"Comparison: expected a mapping with keys from {sorted(fields)}, got {payload!r}")
        values = {key: (math.nan if value is None and key in ("dense", "pruned", "difference", "p_value") else value)
                  for key, value in payload.items()}
        return cls(**values)

    def line(self, digits: int = 3, names: tuple[str, str] = ("dense", "pruned")) -> str:
        """One report line: "accuracy: **lower**, -0.012 [-0.020, -0.004], p = 0.003 (Holm p = 0.009); dense 0.905,
        pruned 0.893, n = 872, exact McNemar (...)"; ``names``: what the reference and the candidate are called."""
        verdict = self.verdict or "not tested"
        interval = ""
        if self.low is not None and self.high is not None and not (math.isnan(self.low) or math.isnan(self.high)):
            interval = f" [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"
        holm = "" if self.p_adjusted is None else f" (Holm p {_p(self.p_adjusted)})"
        named, side = (f"{self.estimate} ", " mean") if self.estimate else ("", "")
        return (f"{self.metric}: **{verdict}**, {named}{self.difference:+.{digits}f}{interval}, "
                f"p {_p(self.p_value)}{holm}; {names[0]}{side} {self.dense:.{digits}f}, {names[1]}{side} "
                f"{self.pruned:.{digits}f}, n = {self.n}, {self.test}")


def _p(value: float) -> str:
    """"= 0.031" or "< 0.001", to follow "p"."""
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"= {value:.3f}")


# ------------------------------------------------------------------------------------------------------ the tests
def _paired_booleans(name: str, dense: Any, pruned: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(dense), np.asarray(pruned)
    if a.ndim != 1 or a.size == 0 or a.shape != b.shape:
        raise ConfigError(f"{name}: expected two non-empty 1-D arrays of the same length (one entry per example), "
                          f"got shapes {a.shape} and {b.shape}")
    for array in (a, b):
        if not np.all((array == 0) | (array == 1)):
            raise ConfigError(f"{name}: expected booleans or 0/1 values")
    return a.astype(bool), b.astype(bool)


def mcnemar(
    dense: Any, pruned: Any, *, metric: str = "accuracy", confidence: float = 0.95
) -> Comparison:
    """Exact McNemar test of two paired 0/1 outcomes (e.g. correct on each example).

    Only the discordant pairs carry information: b examples where only dense succeeds, c where only pruned does.
    Under no change each is equally likely, so p is the two-sided binomial test of c successes in b + c trials.
    The interval of the difference (c - b) / n is the Clopper-Pearson interval of c / (b + c) mapped through
    d = (b + c) / n * (2 theta - 1), conditional on the number of discordant pairs, as the test is; with no
    discordant pair, +- the exact upper bound of a discordance rate of 0 of n.
    """
    from scipy import stats

    a, b_ = _paired_booleans(metric, dense, pruned)
    only_dense = int(np.count_nonzero(a & ~b_))
    only_pruned = int(np.count_nonzero(~a & b_))
    discordant = only_dense + only_pruned
    n = a.size
    difference = (only_pruned - only_dense) / n
    if discordant == 0:
        # no pair disagrees, yet the models may on other examples: the difference is bounded by the discordance
        # rate, whose exact upper bound (0 of n) gives the interval (a zero-width one would claim certainty)
        bound = intervals.proportion_ci(0, n, confidence)[1]
        p_value, low, high = 1.0, -bound, bound
    else:
        p_value = float(stats.binomtest(only_pruned, discordant, 0.5).pvalue)
        theta_low, theta_high = intervals.proportion_ci(only_pruned, discordant, confidence)
        low, high = (discordant / n * (2 * theta - 1) for theta in (theta_low, theta_high))
    return Comparison(metric, float(a.mean()), float(b_.mean()), difference, low, high, p_value, n,
                      f"exact McNemar ({only_dense} only dense, {only_pruned} only pruned)")


def compare_accuracy(dense_correct: Any, pruned_correct: Any, *, confidence: float = 0.95) -> Comparison:
    """Accuracy of two models on the same examples (one bool per example): exact McNemar."""
    return mcnemar(dense_correct, pruned_correct, metric="accuracy", confidence=confidence)


def compare_attack(
    dense_outcomes: Any, pruned_outcomes: Any, *, recipe: str = "attack", confidence: float = 0.95
) -> Comparison | None:
    """Attack success on the examples both models classify correctly (neither skipped): exact McNemar.

    The outcomes are TextAttack's per-example "successful" / "failed" / "skipped", aligned (the same seeded sample
    attacked on both models). Restricting to examples both models got right compares the attack on equal footing:
    a pruned model's lower accuracy otherwise changes which examples are attacked. None when no example qualifies.
    """
    dense_kinds = metrics._as_outcomes(dense_outcomes)
    pruned_kinds = metrics._as_outcomes(pruned_outcomes)
    if dense_kinds.shape != pruned_kinds.shape:
        raise ConfigError(f"pruned_outcomes: expected {dense_kinds.size} outcomes (as dense_outcomes, the same "
                          f"sample), got {pruned_kinds.size}")
    both = (dense_kinds != "skipped") & (pruned_kinds != "skipped")
    if not both.any():
        return None
    return mcnemar(dense_kinds[both] == "successful", pruned_kinds[both] == "successful",
                   metric=attack_metric(recipe), confidence=confidence)


def attack_metric(recipe: str) -> str:
    """The name of the attack-success comparison of ``recipe`` (reports and pooled tests use the same)."""
    return f"attack success ({recipe}, on examples both classify correctly)"


def delong(
    dense_scores: Any, pruned_scores: Any, is_member: Any, *, metric: str = "MIA AUC", confidence: float = 0.95
) -> Comparison:
    """DeLong's test of two correlated AUCs: membership scores of both models on the same members and non-members.

    Each example's placement (the share of the other class it outranks, ties one half) comes from scipy ranks; the
    covariance of the two models' placements gives the variance of the AUC difference, and a normal test and
    interval follow (DeLong, DeLong & Clarke-Pearson 1988; Sun & Xu 2014 for the rank form).
    """
    from scipy import stats

    dense_score, member = metrics._as_membership(dense_scores, is_member)
    pruned_score, _ = metrics._as_membership(pruned_scores, is_member)
    if pruned_score.shape != dense_score.shape:
        raise ConfigError(f"pruned_scores: expected {dense_score.size} scores (as dense_scores), got "
                          f"{pruned_score.size}")
    n_pos, n_neg = int(member.sum()), int((~member).sum())
    if n_pos < 2 or n_neg < 2:
        raise ConfigError("is_member: DeLong's test needs at least 2 members and 2 non-members")
    scores = np.stack([dense_score, pruned_score])  # (2 models, n examples)
    overall = stats.rankdata(scores, axis=1)
    within_pos = stats.rankdata(scores[:, member], axis=1)
    within_neg = stats.rankdata(scores[:, ~member], axis=1)
    # placement of a member: the share of non-members it outscores; of a non-member: the share of members above it
    v_pos = (overall[:, member] - within_pos) / n_neg
    v_neg = 1.0 - (overall[:, ~member] - within_neg) / n_pos
    aucs = v_pos.mean(axis=1)
    covariance = np.cov(v_pos) / n_pos + np.cov(v_neg) / n_neg
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    difference = float(aucs[1] - aucs[0])
    if variance <= 0:
        # identical rankings (or both perfectly separated): nothing differs. A difference with no variance to judge
        # it by (e.g. one model scores every example alike) is left untested rather than called certain
        p_value, low, high = (1.0, difference, difference) if difference == 0 else (math.nan, math.nan, math.nan)
    else:
        z = difference / math.sqrt(variance)
        p_value = float(2 * stats.norm.sf(abs(z)))
        half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(variance)
        low, high = difference - half, difference + half
    return Comparison(metric, float(aucs[0]), float(aucs[1]), difference, low, high, p_value, member.size,
                      f"DeLong ({n_pos} members, {n_neg} non-members)")


def wilcoxon(dense: Any, pruned: Any, *, metric: str, confidence: float = 0.95) -> Comparison:
    """Wilcoxon signed-rank test of paired values, e.g. the exposure of each canary, with its own estimate and
    interval: the Hodges-Lehmann median shift (pruned - dense) and the interval that inverts the same test, so the
    interval excludes 0 exactly when p < 1 - confidence (see :mod:`hfprune.audit.signed_rank` for the method and
    its one edge). No interval where n is too small for the test to reject (5 pairs or fewer at 95%).
    """
    a = metrics._as_vector(f"{metric} (dense)", dense)
    b = metrics._as_vector(f"{metric} (pruned)", pruned)
    if a.shape != b.shape:
        raise ConfigError(f"{metric}: expected as many pruned values as dense ones ({a.size}), got {b.size}")
    found = signed_rank.signed_rank(b - a, confidence)
    return Comparison(metric, float(a.mean()), float(b.mean()), found.estimate, found.low, found.high,
                      found.p_value, a.size, f"Wilcoxon signed-rank ({found.method})", estimate=signed_rank.ESTIMATE)


def paired_t(dense: Any, pruned: Any, *, metric: str, confidence: float = 0.95, test: str = "paired t-test"
             ) -> Comparison:
    """Paired t-test (scipy) of the mean difference pruned - dense over examples, with its t interval; p = 1 when
    every difference is 0 and 0 when they are all one other value (no spread to test against)."""
    from scipy import stats

    intervals.check_confidence(confidence)
    a = metrics._as_vector(f"{metric} (dense)", dense)
    b = metrics._as_vector(f"{metric} (pruned)", pruned)
    if a.shape != b.shape:
        raise ConfigError(f"{metric}: expected as many pruned values as dense ones ({a.size}), got {b.size}")
    differences = b - a
    low = high = None
    if np.any(differences != differences[0]):
        result = stats.ttest_1samp(differences, 0.0)
        p_value = float(result.pvalue)
        low, high = (float(x) for x in result.confidence_interval(confidence))
    else:
        p_value = 1.0 if differences[0] == 0 else 0.0
    return Comparison(metric, float(a.mean()), float(b.mean()), float(differences.mean()), low, high, p_value,
                      differences.size, f"{test} over {differences.size} examples")


# --------------------------------------------------------------------------------------------------- the verdicts
def holm(p_values: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control for several tests), in the input order.

    The i-th smallest p-value is multiplied by (m - i + 1); adjusted values are made non-decreasing and capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ConfigError("p_values: expected a 1-D array of probabilities in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def decide(comparisons: list[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """Holm-adjust the p-values of one report's comparisons and give each its verdict at ``alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    tested = [i for i, c in enumerate(comparisons) if not math.isnan(c.p_value)]
    adjusted = dict(zip(tested, holm([comparisons[i].p_value for i in tested]), strict=True)) if tested else {}
    decided = list(comparisons)
    for i, p_adjusted in adjusted.items():
        difference = comparisons[i].difference
        verdict = VERDICTS[2]
        if p_adjusted < alpha and difference != 0:
            verdict = VERDICTS[0] if difference > 0 else VERDICTS[1]
        decided[i] = replace(comparisons[i], p_adjusted=float(p_adjusted), verdict=verdict)
    return decided


# ----------------------------------------------------------------------------------------------- model against model
@dataclass
class PairedRecords:
    """One model's per-example records, as its evaluation and audit saved them: what the paired tests read.

    ``quality`` is the evaluation record (``metric``, ``value``, ``per_example``: 1/0 correct for accuracy, the
    text's NLL for perplexity); the audit results keep their attack outcomes, membership scores and exposures.
    """

    quality: Mapping[str, Any] | None = None
    robustness: Sequence[RobustnessResult] = field(default_factory=list)
    membership: Sequence[MembershipInferenceResult] = field(default_factory=list)
    exposure: Sequence[CanaryExposureResult] = field(default_factory=list)
    extraction: Sequence[MembershipInferenceResult] = field(default_factory=list)

    @classmethod
    def of(cls, quality: Mapping[str, Any] | None, audit: Any) -> Self:
        """From an evaluation record and a ``ModelAudit`` (anything with ``robustness`` and ``privacy``)."""
        if audit is None:
            return cls(quality)
        privacy = audit.privacy
        return cls(quality, list(audit.robustness), list(privacy.membership) if privacy else [],
                   list(privacy.exposure) if privacy else [], list(privacy.extraction) if privacy else [])


def compare_models(dense: PairedRecords, pruned: PairedRecords, *, confidence: float = 0.95) -> list[Comparison]:
    """Every paired test the two models' records allow (not yet Holm-adjusted: see :func:`decide`).

    A metric is compared only when both models recorded it on the same examples (same length; same membership
    labels); records saved before per-example vectors were kept are skipped.
    """
    found: list[Comparison | None] = [_compare_quality(dense.quality, pruned.quality, confidence)]
    dense_attacks = {r.recipe: r for r in dense.robustness}
    for result in pruned.robustness:
        other = dense_attacks.get(result.recipe)
        if other is not None and _aligned(other.outcomes, result.outcomes):
            found.append(compare_attack(other.outcomes, result.outcomes, recipe=result.recipe, confidence=confidence))
    compared = []  # (dense, pruned) membership results tested
    for other, result in _paired_rankings(dense.membership, pruned.membership):
        compared.append((other, result))
        found.append(delong(other.scores, result.scores, result.is_member, metric=f"MIA AUC ({result.attack})",
                            confidence=confidence))
        if result.attack == LOSS_ATTACK:
            found.extend(member_losses(other.scores, result.scores, result.is_member, confidence=confidence))
    for other, result in _paired_rankings(dense.extraction, pruned.extraction):
        # the perplexity ranking orders texts exactly as the loss attack does: testing its AUC again would count
        # one comparison twice in the Holm family (it is tested when the loss attack did not run)
        if not any(_same_scores(other, a) and _same_scores(result, b) for a, b in compared):
            found.append(delong(other.scores, result.scores, result.is_member, confidence=confidence,
                                metric=f"{EXTRACTION_METRIC} ({result.attack})"))
    dense_canaries = {r.repetitions: r for r in dense.exposure}
    for result in pruned.exposure:
        other = dense_canaries.get(result.repetitions)
        if other is not None and _aligned(other.exposures, result.exposures):
            found.append(wilcoxon(other.exposures, result.exposures, confidence=confidence,
                                  metric=f"canary exposure, bits ({result.repetitions} repetitions)"))
    return [c for c in found if c is not None]


def member_losses(
    dense_scores: Any, pruned_scores: Any, is_member: Any, *, confidence: float = 0.95
) -> list[Comparison]:
    """The loss attack's scores (-loss per example) split by side: a paired t-test of the members' mean loss and
    one of the non-members', pruned against dense on the same examples (:func:`paired_t`).

    A higher MIA AUC can mean the model fits its training examples more closely (members' loss down: more
    memorisation) or does worse on unseen ones (non-members' loss up: worse generalisation, which the accuracy
    test sees too); these two tests tell which. The mean, not a median shift: the means are the audit's
    train / held-out losses, whose difference is its loss gap, and per-example losses are skewed (most near 0), so a
    median shift can move one way while a tail moves the mean the other.
    """
    member = np.asarray(is_member, dtype=bool)
    dense = -metrics._as_vector("loss attack scores (dense)", dense_scores)
    pruned = -metrics._as_vector("loss attack scores (pruned)", pruned_scores)
    if not dense.shape == pruned.shape == member.shape:
        raise ConfigError(f"loss attack scores: expected {member.size} dense and pruned scores, one per example, "
                          f"got {dense.size} and {pruned.size}")
    return [paired_t(dense[side], pruned[side], metric=name, confidence=confidence)
            for name, side in zip(MEMBER_LOSS_METRICS, (member, ~member), strict=True)]


def _paired_rankings(
    dense: Sequence[MembershipInferenceResult], pruned: Sequence[MembershipInferenceResult]
) -> list[tuple[MembershipInferenceResult, MembershipInferenceResult]]:
    """(dense, pruned) results of the same attack scored on the same members and non-members."""
    by_attack = {r.attack: r for r in dense}
    return [(by_attack[r.attack], r) for r in pruned
            if r.attack in by_attack and _aligned(by_attack[r.attack].scores, r.scores)
            and by_attack[r.attack].is_member == r.is_member]


def _same_scores(a: MembershipInferenceResult, b: MembershipInferenceResult) -> bool:
    return a.scores is not None and b.scores is not None and np.allclose(a.scores, b.scores, rtol=1e-9, atol=0)


def _aligned(a: Sequence[Any] | None, b: Sequence[Any] | None) -> bool:
    return a is not None and b is not None and len(a) == len(b) > 0


def _compare_quality(
    dense: Mapping[str, Any] | None, pruned: Mapping[str, Any] | None, confidence: float
) -> Comparison | None:
    if dense is None or pruned is None or dense.get("metric") != pruned.get("metric"):
        return None
    a, b = dense.get("per_example"), pruned.get("per_example")
    if not _aligned(a, b):
        return None
    if dense["metric"] == "accuracy":
        return compare_accuracy(a, b, confidence=confidence)
    return wilcoxon(a, b, metric=LOSS_METRIC, confidence=confidence)


def decide_groups(groups: Mapping[str, list[Comparison]], alpha: float = ALPHA) -> dict[str, list[Comparison]]:
    """:func:`decide` over the comparisons of several groups together (Holm across all), split back by group."""
    names = [name for name, comparisons in groups.items() for _ in comparisons]
    decided = decide([c for comparisons in groups.values() for c in comparisons], alpha)
    result: dict[str, list[Comparison]] = {name: [] for name in groups}
    for name, comparison in zip(names, decided, strict=True):
        result[name].append(comparison)
    return result


def estimate_note(groups: Mapping[str, list[Comparison]]) -> str:
    """The sentence that says what a named difference is (" A Wilcoxon line ..."), or "" when no line has one."""
    if not any(c.estimate for comparisons in groups.values() for c in comparisons):
        return ""
    return (f" A Wilcoxon line gives the {signed_rank.ESTIMATE} (the median of the averages of every two paired "
            "differences) with the interval that inverts its test, so the interval excludes 0 exactly when p is "
            "below 1 - confidence, beside each model's mean.")


def member_loss_note(groups: Mapping[str, list[Comparison]]) -> str:
    """The sentence that says how to read the members' and non-members' loss lines, or "" when there are none."""
    if not any(c.metric in MEMBER_LOSS_METRICS for comparisons in groups.values() for c in comparisons):
        return ""
    return (" The loss on members and on non-members (mean per-example loss, paired t-test) say where a change in "
            "the loss attack's AUC comes from: members' loss down means the model fits the examples it trained on "
            "more closely (memorisation), non-members' loss up means it does worse on unseen ones.")


def changes_markdown(groups: Mapping[str, list[Comparison]], alpha: float = ALPHA, confidence: float = 0.95,
                     names: Mapping[str, tuple[str, str]] | None = None, note: str = "") -> str:
    """The "What pruning changed" section: one line per metric and pruned model, verdicts already decided; ``names``
    gives a group's reference and candidate names (default: dense, pruned), ``note`` ends the introduction."""
    total = sum(len(comparisons) for comparisons in groups.values())
    lines = ["## What pruning changed", ""]
    if not total:
        return "\n".join(lines + ["No per-example records to compare (the stages were audited before hfprune kept "
                                   "them; re-run to compare).", ""])
    lines += [f"Each pruned model against the dense one on the same examples: difference = pruned - dense with its "
              f"{confidence:.0%} interval, paired test p-value, and the verdict at alpha {alpha} after Holm's "
              f"correction across the {total} comparisons of this report. *No detectable change* means this sample "
              f"cannot tell the models apart, not that they are equal.{estimate_note(groups)}"
              f"{member_loss_note(groups)}{note}", ""]
    for name, comparisons in groups.items():
        if not comparisons:
            continue
        if len(groups) > 1:
            lines += [f"**{name}**", ""]
        labels = (names or {}).get(name, ("dense", "pruned"))
        lines += [f"- {comparison.line(names=labels)}" for comparison in comparisons] + [""]
    return "\n".join(lines)
