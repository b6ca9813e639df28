"""Confidence intervals that hold their coverage: exact binomial intervals for proportions, BCa bootstrap otherwise.

A proportion k/n (accuracy, attack success, accuracy under attack, label loyalty, TPR at a fixed FPR) gets the
Clopper-Pearson interval, which never covers less than its nominal level, or Wilson's on request. The percentile
bootstrap this replaces collapses to a zero-width interval at 0/n or n/n (25/25 gave [1, 1]; the exact interval is
[0.863, 1]). Statistics without a closed form (AUC, a mean) get scipy's bias-corrected and accelerated bootstrap.
``scripts/bench_intervals.py`` measures the coverage of each method; ``benchmarks/intervals/`` holds the table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from hfprune.errors import ConfigError

ProportionMethod = Literal["exact", "wilson"]
PROPORTION_METHODS: dict[str, str] = {"exact": "Clopper-Pearson", "wilson": "Wilson"}

# Fewer values than this get no bootstrap interval: with 2-4 canaries a "95%" interval of the mean covers the
# truth about half the time (issue 16: 52% in 400 simulations with 2), so the values are listed instead.
MIN_BOOTSTRAP_N = 5

# A mean exposure gets its (studentized bootstrap) interval from this many canaries on; fewer are listed. Measured
# (scripts/bench_intervals.py, benchmarks/intervals/README.md, 1000 samples a row): with 10 canaries it covers
# 0.934-0.976 on unmemorised canaries (-log2 U, exact ranks), on canaries all partly memorised and with 30% of them
# memorised; with 5-8 it falls to 0.90-0.93 on those. No interval from the canaries alone holds at small n when
# memorised canaries are rare (10%: a third of 10-canary samples hold none; 0.88 at 10, 0.92 at 20) or when a few
# unmemorised ones hide among memorised ones (90%: 0.73 at 10): both hold from 30 canaries (0.95).
MIN_EXPOSURE_INTERVAL_N = 10

# A TPR at FPR alpha is reported only when alpha * n_nonmembers >= this many expected false positives: below it the
# threshold sits on the top few non-member scores, the estimate is biased up (+26% to +41% under 2 expected) and
# its BCa interval covers 0.78-0.85 under 2 expected, 0.92 or 0.96 at 3 (two runs of 300), 0.94-0.97 from 6
# (600 non-members; benchmarks/intervals/README.md).
MIN_FALSE_POSITIVES = 5


def check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: expected a number in (0, 1), got {confidence!r}")


def proportion_ci(
    successes: int, trials: int, confidence: float = 0.95, method: ProportionMethod = "exact"
) -> tuple[float, float]:
    """Interval of a binomial proportion successes/trials: Clopper-Pearson ("exact") or Wilson (scipy's binomtest).

    (nan, nan) when there are no trials.
    """
    from scipy import stats

    check_confidence(confidence)
    if method not in PROPORTION_METHODS:
        raise ConfigError(f"interval: expected one of {sorted(PROPORTION_METHODS)}, got {method!r}")
    if not 0 <= successes <= trials:
        raise ConfigError(f"successes: expected an integer in [0, trials={trials}], got {successes}")
    if trials == 0:
        return math.nan, math.nan
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method=method)
    return float(ci.low), float(ci.high)


def proportion_ci_table(
    trials: int, confidence: float = 0.95, method: ProportionMethod = "exact"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`proportion_ci` for every count 0..trials at once: (lows, highs), indexed by the count. A simulation
    of k ~ Binomial(trials, p) then reads its intervals by indexing (scripts/bench_intervals.py, the coverage test)."""
    ends = np.array([proportion_ci(k, trials, confidence, method) for k in range(trials + 1)])
    return ends[:, 0], ends[:, 1]


def bca_ci(statistic: Callable[..., Any], *samples: np.ndarray, **options: Any) -> tuple[float, float]:
    """BCa bootstrap interval of ``statistic(*samples)``: :func:`bca_bootstrap` without the distribution (same
    ``options``: confidence, n_resamples, seed, paired, vectorized)."""
    low, high, _ = bca_bootstrap(statistic, *samples, **options)
    return low, high


def bca_bootstrap(
    statistic: Callable[..., Any],
    *samples: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    paired: bool = True,
    vectorized: bool = True,
) -> tuple[float, float, np.ndarray]:
    """BCa bootstrap interval of ``statistic(*samples)`` (``scipy.stats.bootstrap``), and the bootstrap distribution
    it came from (``scripts/bench_intervals.py`` compares interval methods on the same resamples).

    ``paired=True`` resamples the rows of all samples jointly (paired values stay paired); ``paired=False`` resamples
    each sample on its own, which keeps each sample's size: members and non-members for an AUC. A ``vectorized``
    statistic takes an ``axis`` keyword. Constant data (every resample gives the same value) returns the value
    itself as both ends; fewer than two rows in a sample returns (nan, nan).
    """
    from scipy import stats

    check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if any(len(sample) < 2 for sample in samples):
        return math.nan, math.nan, np.array([])
    with warnings.catch_warnings():
        # constant data: scipy warns and returns NaN, handled below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(samples, statistic, n_resamples=n_resamples, confidence_level=confidence,
                                 method="BCa", paired=paired, vectorized=vectorized, rng=np.random.default_rng(seed))
    distribution = np.asarray(result.bootstrap_distribution)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        if np.ptp(distribution) == 0:
            value = float(distribution.flat[0])
            return value, value, distribution
        return math.nan, math.nan, distribution
    return low, high, distribution


def studentized_mean_ci(
    values: np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    support: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[np.ndarray, np.ndarray]:
    """Studentized (bootstrap-t) interval of the mean of ``values`` along the last axis; leading axes are separate
    samples (a simulation passes thousands at once), all drawn with the same resample indices.

    Each resample's t = (mean* - mean) / se* calibrates the interval mean - t_(1-a/2) se .. mean - t_(a/2) se, so
    a right-skewed sample (exposures: -log2 U and a few memorised canaries) gets the long upper arm it needs; BCa,
    which only shifts percentiles of the resampled means, covered 0.86-0.89 with 10 canaries (benchmarks/intervals). A
    resample of identical values has se* = 0, so the ends can be infinite; they are clipped to ``support``, where
    the mean must lie. Constant data give (mean, mean).
    """
    check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    if n < 2:
        raise ConfigError(f"values: expected at least 2 values along the last axis, got {n}")
    rows = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    resampled = values[..., rows]  # (..., n_resamples, n)
    mean, se = values.mean(axis=-1), values.std(axis=-1, ddof=1) / math.sqrt(n)
    # A resample of one repeated value has se* = 0 (its float std is ~1e-16, hence np.ptp) and t = +-inf. Kept, not
    # dropped: a sample piled at the cap log2 |R| then gets an arm reaching the support's end instead of one that
    # undercovers (3,000 simulated samples of 8 canaries, 80% of them at the top 2 of 10^4 ranks: 0.91 kept, 0.81
    # dropped).
    boot_se = np.where(np.ptp(resampled, axis=-1) == 0, 0.0, resampled.std(axis=-1, ddof=1) / math.sqrt(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.nan_to_num((resampled.mean(axis=-1) - mean[..., None]) / boot_se, nan=0.0, posinf=np.inf,
                          neginf=-np.inf)  # 0/0: a constant resample at the mean
    # inverted_cdf picks an order statistic: no interpolation between a finite t and an infinite one (NaN)
    low_t, high_t = np.quantile(t, [(1 - confidence) / 2, (1 + confidence) / 2], axis=-1, method="inverted_cdf")
    with np.errstate(invalid="ignore"):
        low, high = mean - high_t * se, mean - low_t * se
    constant = np.ptp(values, axis=-1) == 0
    low, high = np.where(constant, mean, low), np.where(constant, mean, high)
    return np.clip(low, *support), np.clip(high, *support)


def mean_statistic(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean along ``axis``: the vectorised statistic ``bca_ci`` needs for a mean."""
    return np.mean(values, axis=axis)


def auc_two_sample(members: np.ndarray, nonmembers: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(member score > non-member score) + 1/2 P(tie): the ROC AUC as a Mann-Whitney U (scipy), vectorised."""
    from scipy import stats

    u_statistic = stats.mannwhitneyu(members, nonmembers, axis=axis, method="asymptotic").statistic
    return u_statistic / (np.shape(members)[axis] * np.shape(nonmembers)[axis])


def tpr_two_sample(members: np.ndarray, nonmembers: np.ndarray, fpr: float, axis: int = -1) -> np.ndarray:
    """:func:`hfprune.audit.metrics.tpr_at_fpr` from the two score samples, vectorised along ``axis``.

    At most k = floor(fpr * n_nonmembers) non-members may score above the threshold, so it sits at the (k+1)-th
    highest non-member score and the TPR is the share of members strictly above it (ties included, this is the
    highest ROC point with FPR <= fpr).
    """
    allowed = math.floor(fpr * np.shape(nonmembers)[axis] + 1e-9)
    if allowed >= np.shape(nonmembers)[axis]:
        return np.mean(np.ones_like(members), axis=axis)
    descending = -np.partition(-np.asarray(nonmembers), allowed, axis=axis)
    threshold = np.take(descending, [allowed], axis=axis)
    return np.mean(members > threshold, axis=axis)


def fpr_resolved(fpr: float, n_nonmembers: int) -> bool:
    """Whether ``n_nonmembers`` resolve a false-positive rate: at least MIN_FALSE_POSITIVES expected false alarms."""
    return fpr * n_nonmembers >= MIN_FALSE_POSITIVES - 1e-9


def nonmembers_needed(fpr: float) -> int:
    """The fewest non-members that resolve ``fpr`` (MIN_FALSE_POSITIVES expected false positives)."""
    return math.ceil(MIN_FALSE_POSITIVES / fpr - 1e-9)


def smallest_resolved_fpr(n_nonmembers: int) -> float:
    """The smallest false-positive rate ``n_nonmembers`` resolve."""
    return MIN_FALSE_POSITIVES / n_nonmembers
