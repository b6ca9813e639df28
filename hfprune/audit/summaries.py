"""Constructors that fill the typed audit results (:mod:`hfprune.audit.results`) from raw logs: an attack log, the
dense and pruned probabilities, membership scores, canary perplexities; each estimate with its interval."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from hfprune.audit import intervals, metrics
from hfprune.audit.intervals import ProportionMethod
from hfprune.audit.results import (
    BCA,
    STUDENTIZED,
    TPR_FIELDS,
    CanaryExposureResult,
    LoyaltyResult,
    MembershipInferenceResult,
    MetricWithCI,
    RobustnessResult,
)


def proportion_estimate(
    successes: int, trials: int, *, confidence: float = 0.95, interval: ProportionMethod = "exact"
) -> MetricWithCI:
    """successes / trials with its exact (Clopper-Pearson) or Wilson interval; NaN without trials."""
    low, high = intervals.proportion_ci(successes, trials, confidence, interval)
    value = successes / trials if trials else math.nan
    return MetricWithCI(value, low, high, trials, intervals.PROPORTION_METHODS[interval])


def mean_estimate(
    values: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> MetricWithCI:
    """The mean of ``values`` with a BCa bootstrap interval; no interval below MIN_BOOTSTRAP_N values or when
    ``n_resamples`` is 0, NaN when empty."""
    if values.size == 0:
        return MetricWithCI(math.nan, n=0)
    value = float(np.mean(values))
    if n_resamples == 0 or values.size < intervals.MIN_BOOTSTRAP_N:
        return MetricWithCI(value, n=values.size)
    low, high = intervals.bca_ci(intervals.mean_statistic, values, n_resamples=n_resamples, confidence=confidence,
                                 seed=seed)
    return MetricWithCI(value, low, high, values.size, BCA)


def exposure_mean_estimate(
    values: np.ndarray, space_size: int, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> MetricWithCI:
    """The mean exposure with a studentized bootstrap interval, clipped to [0, log2 |R|] where exposures lie; no
    interval below MIN_EXPOSURE_INTERVAL_N canaries or when ``n_resamples`` is 0, NaN when empty.

    Not BCa as for the other means: exposures are right-skewed (-log2 U, plus a tail of memorised canaries) and BCa
    covered 0.86-0.89 with 10 unmemorised canaries and 0.90-0.91 with 20, the studentized bootstrap 0.93-0.94
    (benchmarks/intervals/README.md; intervals.MIN_EXPOSURE_INTERVAL_N says where it does not hold).
    """
    if values.size == 0:
        return MetricWithCI(math.nan, n=0)
    value = float(np.mean(values))
    if n_resamples == 0 or values.size < intervals.MIN_EXPOSURE_INTERVAL_N:
        return MetricWithCI(value, n=values.size)
    low, high = intervals.studentized_mean_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed,
                                              support=(0.0, math.log2(space_size)))
    return MetricWithCI(value, float(low), float(high), values.size, STUDENTIZED)


def summarize_attack_log(
    outcomes: Sequence[str],
    perturbed_word_pcts: Any,
    queries: Any,
    *,
    model_name: str,
    sparsity: float,
    recipe: str,
    query_budget: int | None = None,
    queries_over: Literal["attacked", "successful"] = "attacked",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    interval: ProportionMethod = "exact",
) -> RobustnessResult:
    """Summarise a per-example TextAttack log ("successful"/"failed"/"skipped", word %, queries).

    The three rates are proportions with exact intervals (``interval="wilson"`` for Wilson's); the mean word % and
    query count get BCa bootstrap intervals over the examples they average (none when ``n_resamples`` is 0). The
    outcomes are kept, one per example in sample order, for paired comparisons between models.
    See :mod:`hfprune.audit.metrics` for the definitions and :func:`~hfprune.audit.metrics.mean_queries` for
    ``queries_over``.
    """
    kinds = np.char.lower(np.asarray(outcomes, dtype=str))
    counts = metrics.count_outcomes(kinds)
    attacked = counts.successful + counts.failed
    rate = {"confidence": confidence, "interval": interval}
    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    words = metrics._per_example("perturbed_word_pcts", perturbed_word_pcts, kinds)
    metrics.mean_perturbed_word_pct(kinds, words)  # validates: no NaN where averaged
    costs = metrics._per_example("queries", queries, kinds)
    metrics.mean_queries(kinds, costs, over=queries_over)
    averaged = kinds == "successful" if queries_over == "successful" else kinds != "skipped"
    return RobustnessResult(
        model_name=model_name,
        sparsity=float(sparsity),
        recipe=recipe,
        n_examples=int(kinds.size),
        clean_accuracy=proportion_estimate(attacked, counts.total, **rate),
        accuracy_under_attack=proportion_estimate(counts.failed, counts.total, **rate),
        attack_success_rate=proportion_estimate(counts.successful, attacked, **rate),
        mean_perturbed_word_pct=mean_estimate(words[kinds == "successful"], **boot),
        mean_queries=mean_estimate(costs[averaged], **boot),
        query_budget=query_budget,
        seed=seed,
        outcomes=kinds.tolist(),
    )


def summarize_loyalty(
    reference: Any,
    other: Any,
    *,
    model_name: str,
    sparsity: float,
    reference_name: str,
    from_logits: bool | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    interval: ProportionMethod = "exact",
) -> LoyaltyResult:
    """Label loyalty (a proportion, exact interval) and probability loyalty (a mean over examples, BCa bootstrap)
    of ``other`` to ``reference`` (both (n, n_classes))."""
    ref = metrics._as_matrix("reference", reference)
    oth = metrics._as_matrix("other", other)
    metrics._same_shape("reference", ref, "other", oth)
    agree = int(np.count_nonzero(ref.argmax(axis=1) == oth.argmax(axis=1)))
    per_example = 1.0 - metrics.js_distance(metrics._probabilities("reference", ref, from_logits),
                                            metrics._probabilities("other", oth, from_logits))
    return LoyaltyResult(
        model_name=model_name,
        sparsity=float(sparsity),
        reference_name=reference_name,
        n_examples=int(ref.shape[0]),
        label_loyalty=proportion_estimate(agree, ref.shape[0], confidence=confidence, interval=interval),
        probability_loyalty=mean_estimate(per_example, n_resamples=n_resamples, confidence=confidence, seed=seed),
        seed=seed,
    )


def summarize_membership(
    scores: Any,
    is_member: Any,
    *,
    model_name: str,
    sparsity: float,
    attack: str,
    keep_roc: bool = True,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MembershipInferenceResult:
    """AUC, best balanced accuracy and TPR at 1% / 0.1% FPR of an attack's scores.

    AUC, balanced accuracy and TPR at a fixed FPR get BCa bootstrap intervals that resample members and
    non-members separately (each resample keeps both counts). A TPR's threshold is itself estimated from the
    non-members, so an exact binomial interval over the members alone would ignore most of its noise (it covered
    56-74% in benchmarks/intervals). A TPR is NaN when the non-members cannot resolve its FPR (fewer than
    ``intervals.MIN_FALSE_POSITIVES`` expected false positives). ``keep_roc`` stores every ROC point for plotting;
    the scores are always kept, one per example in split order, for paired comparisons between models.
    """
    score, member = metrics._as_membership(scores, is_member)
    fpr, tpr, _ = metrics.roc_curve(score, member) if keep_roc else (None, None, None)
    n_members, n_nonmembers = int(member.sum()), int((~member).sum())
    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed, "paired": False}

    def two_sample(statistic: Callable[..., Any], value: float, vectorized: bool = True) -> MetricWithCI:
        if n_resamples == 0:
            return MetricWithCI(value, n=member.size)
        low, high = intervals.bca_ci(statistic, score[member], score[~member], vectorized=vectorized, **boot)
        return MetricWithCI(value, low, high, member.size, BCA)

    def tpr_at(rate: float) -> MetricWithCI:
        if not intervals.fpr_resolved(rate, n_nonmembers):
            return MetricWithCI(math.nan, n=member.size)
        return two_sample(functools.partial(intervals.tpr_two_sample, fpr=rate),
                          metrics.tpr_at_fpr(score, member, rate))

    return MembershipInferenceResult(
        model_name=model_name,
        sparsity=float(sparsity),
        attack=attack,
        n_members=n_members,
        n_nonmembers=n_nonmembers,
        auc=two_sample(intervals.auc_two_sample, metrics.roc_auc(score, member)),
        balanced_accuracy=two_sample(metrics.balanced_accuracy_two_sample, metrics.balanced_accuracy(score, member)),
        **{name: tpr_at(rate) for rate, name in TPR_FIELDS.items()},
        roc_fpr=None if fpr is None else fpr.tolist(),
        roc_tpr=None if tpr is None else tpr.tolist(),
        seed=seed,
        scores=score.tolist(),
        is_member=member.tolist(),
    )


def summarize_exposure(
    exposures: Any,
    *,
    model_name: str,
    sparsity: float,
    repetitions: int,
    space_size: int,
    method: Literal["exact", "skewnorm"],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CanaryExposureResult:
    """Mean (with a studentized bootstrap interval over canaries, :func:`exposure_mean_estimate`) and max exposure
    of the canaries inserted ``repetitions`` times; every canary's exposure is kept, in canary order."""
    values = metrics._as_vector("exposures", exposures)
    return CanaryExposureResult(
        model_name=model_name,
        sparsity=float(sparsity),
        repetitions=int(repetitions),
        n_canaries=int(values.size),
        space_size=int(space_size),
        mean_exposure=exposure_mean_estimate(values, space_size, n_resamples=n_resamples, confidence=confidence,
                                             seed=seed),
        max_exposure=float(values.max()),
        method=method,
        seed=seed,
        exposures=values.tolist(),
    )
