"""A vectorised coverage check of the proportion intervals at one small n, so a regression cannot land
(scripts/bench_intervals.py measures every method over the full grid; benchmarks/intervals/README.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hfprune.audit import intervals, metrics

N = 20
DRAWS = 20_000


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5, 0.9, 0.98])
@pytest.mark.parametrize("method", ["exact", "wilson"])
def test_proportion_intervals_cover_at_least_93_percent(rate, method):
    counts = np.random.default_rng(0).binomial(N, rate, size=DRAWS)
    lows, highs = intervals.proportion_ci_table(N, 0.95, method)
    coverage = np.mean((lows[counts] <= rate) & (rate <= highs[counts]))
    # Clopper-Pearson never covers less than nominal; Wilson dips a little below it near 0 and 1
    assert coverage >= (0.95 if method == "exact" else 0.93)


def test_the_old_percentile_bootstrap_misses_rates_near_one():
    # what hfprune did before: at p = 0.98, 20/20 (probability 0.67) gives the zero-width interval [1, 1]
    rate = 0.98
    counts = np.random.default_rng(1).binomial(N, rate, size=DRAWS)
    covered = {int(k): metrics.bootstrap_ci(np.mean, np.r_[np.ones(k), np.zeros(N - k)], n_resamples=300)
               for k in np.unique(counts)}
    coverage = np.mean([covered[int(k)][0] <= rate <= covered[int(k)][1] for k in counts])
    assert coverage < 0.5
    assert covered[N] == (1.0, 1.0)


CANARIES = 10  # intervals.MIN_EXPOSURE_INTERVAL_N: the fewest canaries that get an interval
SAMPLES = 1000


def test_the_mean_exposure_interval_covers_at_least_93_percent_at_10_canaries():
    # unmemorised canaries: exposure -log2 U (mean 1/ln 2); 30% memorised: ranked among the top 10 of 10^4, the
    # rest unmemorised and capped at log2 10^4 as hfprune computes them (measured: 0.949 and 0.973)
    rng = np.random.default_rng(0)
    cap = math.log2(10**4)
    unmemorised = -np.log2(rng.uniform(size=(SAMPLES, CANARIES)))
    memorised = rng.uniform(size=(SAMPLES, CANARIES)) < 0.3
    mixed = np.where(memorised, cap - np.log2(rng.integers(1, 11, size=memorised.shape)),
                     np.minimum(-np.log2(rng.uniform(size=memorised.shape)), cap))
    # E[min(-log2 U, cap)] = (1 - 2^-cap) / ln 2
    mixed_truth = 0.7 * (1 - 2**-cap) / math.log(2) + 0.3 * (cap - np.mean(np.log2(np.arange(1, 11))))
    for samples, truth in ((unmemorised, 1 / math.log(2)), (mixed, mixed_truth)):
        low, high = intervals.studentized_mean_ci(samples, n_resamples=500, support=(0.0, cap))
        assert np.mean((low <= truth) & (truth <= high)) >= 0.93
    assert CANARIES == intervals.MIN_EXPOSURE_INTERVAL_N


def test_bca_fell_short_on_the_mean_of_unmemorised_exposures():
    # what hfprune printed before: BCa over 10 unmemorised canaries covers about 0.88 (benchmarks/intervals)
    samples = -np.log2(np.random.default_rng(1).uniform(size=(300, CANARIES)))
    ends = np.array([intervals.bca_ci(intervals.mean_statistic, row, n_resamples=500, seed=i)
                     for i, row in enumerate(samples)])
    assert np.mean((ends[:, 0] <= 1 / math.log(2)) & (1 / math.log(2) <= ends[:, 1])) < 0.92
