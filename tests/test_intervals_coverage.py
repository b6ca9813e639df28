"""A vectorised coverage check of the proportion intervals at one small n, so a regression cannot land
(scripts/bench_intervals.py measures every method over the full grid; benchmarks/intervals/README.md)."""

from __future__ import annotations

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
