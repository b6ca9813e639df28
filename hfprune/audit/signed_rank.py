"""The Wilcoxon signed-rank test with its own estimate and interval: the Hodges-Lehmann median shift.

A mean difference with a bootstrap interval next to a signed-rank p-value can disagree (a SmolLM2 canary run
printed -1.584 [-2.814, -0.547] with p = 0.055): the interval and the test answer different questions. Here all
three come from the signed-rank statistic of the paired differences x (Hollander & Wolfe, Nonparametric Statistical
Methods, ch. 3):

- the M = n(n+1)/2 Walsh averages (x_i + x_j) / 2, i <= j. The signed-rank statistic is the number of positive
  ones plus half the zero ones (zeros split half to each side, scipy's ``zero_method="zsplit"``);
- the estimate is their median (Hodges-Lehmann);
- the interval is [W_(k), W_(M+1-k)] of the sorted Walsh averages, where k - 1 is the largest statistic value the
  two-sided test rejects at 1 - confidence: the set of shifts the test does not reject.

The test is scipy's. Up to 50 pairs (where scipy's own ``method="auto"`` stops computing the exact distribution)
it uses the exact null distribution of the untied statistic; with ties or zeros the statistic can be a half-integer
and scipy rounds it conservatively, and that distribution is then an approximation. Ties shrink the true null
variance, so with ties it tends to be conservative; a normal approximation there can be far worse (5 equal
differences get p = 0.037 from it, while no sign pattern of 5 reaches below 0.0625). Split zeros can make it
slightly liberal: 5 zeros and 1, 2, 3, 4, 5 get p = 0.049, the exact test of the 5 non-zero ones 0.0625. Above 50
pairs: the normal approximation with the tie-corrected variance and a continuity correction.

At alpha = 1 - confidence the interval excludes 0 exactly when p < alpha, with one edge: when 0 is itself a Walsh
average (a zero difference, or two differences of equal size and opposite sign), a test that rejects may have 0 as
an endpoint of the interval. Verdicts are read from Holm-adjusted p-values, so a verdict of *no detectable change*
can still come with an unadjusted interval that excludes 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hfprune.errors import ConfigError

# scipy.stats.wilcoxon(method="auto") computes the exact null distribution up to 50 pairs; so do we
EXACT_MAX_N = 50
ESTIMATE = "median shift (Hodges-Lehmann)"


@dataclass(frozen=True)
class SignedRank:
    """Estimate, interval (None when n is too small for the test to ever reject), p-value and the method used."""

    estimate: float
    low: float | None
    high: float | None
    p_value: float
    method: str


def walsh_averages(x: np.ndarray) -> np.ndarray:
    """(x_i + x_j) / 2 for i <= j, unsorted; n(n+1)/2 values (row by row keeps memory at M, not n^2)."""
    return np.concatenate([(x[i] + x[i:]) / 2 for i in range(x.size)])


def signed_rank(differences: np.ndarray, confidence: float = 0.95) -> SignedRank:
    """Hodges-Lehmann shift of paired ``differences`` with the interval inverting scipy's signed-rank test."""
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    x = np.asarray(differences, dtype=float)
    n = x.size
    walsh = np.sort(walsh_averages(x))
    estimate = float(np.median(walsh))
    _, tie_sizes = np.unique(np.abs(x), return_counts=True)
    if n <= EXACT_MAX_N:
        p_value = float(stats.wilcoxon(x, zero_method="zsplit", method="exact").pvalue)
        critical = _exact_critical(n, 1.0 - confidence)
        method = "exact" if tie_sizes.size == n and np.all(x) else "exact null distribution, ties or zeros"
    else:
        p_value = float(stats.wilcoxon(x, zero_method="zsplit", method="asymptotic", correction=True).pvalue)
        critical = _normal_critical(n, tie_sizes, 1.0 - confidence)
        method = f"normal approximation, n > {EXACT_MAX_N}"
    if critical < 0:
        return SignedRank(estimate, None, None, p_value, method)
    return SignedRank(estimate, float(walsh[critical]), float(walsh[walsh.size - 1 - critical]), p_value, method)


@functools.lru_cache(maxsize=256)
def _exact_critical(n: int, alpha: float) -> int:
    """Largest statistic value t whose exact two-sided p-value is below alpha (-1 when none), asked of scipy itself.

    scipy keeps its exact null distribution private, so the p-value of a statistic t is read from scipy's test on
    the ranks 1..n signed to sum to t (greedily from the top: every t in 0..M is reachable); p grows with t up to
    M/2, so a bisection finds the critical value.
    """
    from scipy import stats

    def p_of(t: int) -> float:
        signs, left = np.empty(n), t
        for rank in range(n, 0, -1):
            signs[rank - 1] = 1.0 if rank <= left else -1.0
            left -= rank if rank <= left else 0
        return float(stats.wilcoxon(signs * np.arange(1.0, n + 1), method="exact").pvalue)

    low, high = -1, n * (n + 1) // 4  # p(low) < alpha (vacuously for -1); p(high) >= alpha (t near M/2: p = 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if p_of(middle) < alpha else (low, middle)
    return low


def _normal_critical(n: int, tie_sizes: np.ndarray, alpha: float) -> int:
    """Largest integer t with p < alpha under scipy's normal approximation (zsplit, tie-corrected variance as
    scipy computes it, continuity correction 0.5); -1 when none."""
    from scipy import stats

    mean = n * (n + 1) / 4
    sizes = tie_sizes.astype(float)
    se = math.sqrt((n * (n + 1) * (2 * n + 1) - float(np.sum(sizes ** 3 - sizes)) / 2) / 24)

    def p_of(t: int) -> float:  # scipy's formula for a statistic t below the mean
        return float(2 * stats.norm.sf((mean - t - 0.5) / se))

    # p(t) < alpha  <=>  t < mean - 0.5 - z se; then step over any rounding of isf/sf at that bound
    critical = math.ceil(mean - 0.5 - float(stats.norm.isf(alpha / 2)) * se) - 1
    while critical + 1 < mean and p_of(critical + 1) < alpha:
        critical += 1
    while critical >= 0 and p_of(critical) >= alpha:
        critical -= 1
    return max(critical, -1)
