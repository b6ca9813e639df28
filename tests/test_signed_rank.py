"""The Wilcoxon comparison's estimate, interval and test are one method: checked against scipy and against the
Walsh averages computed directly."""

import itertools

import numpy as np
import pytest
from scipy import stats

from hfprune.audit import compare
from hfprune.audit.signed_rank import ESTIMATE, EXACT_MAX_N, signed_rank


def _walsh_sorted(x):
    return np.sort([(x[i] + x[j]) / 2 for i in range(len(x)) for j in range(i, len(x))])


def _enumerated_critical(n, alpha=0.05):
    """Largest t with 2 P(T <= t) < alpha, T the signed-rank statistic over all 2^n sign patterns (no scipy)."""
    totals = np.array([sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)
                       for signs in itertools.product((0, 1), repeat=n)])
    return max((t for t in range(n * (n + 1) // 2) if 2 * np.mean(totals <= t) < alpha), default=-1)


def test_exact_interval_is_the_walsh_order_statistics_of_the_enumerated_critical_value():
    rng = np.random.default_rng(0)
    for n in (6, 8, 10, 12):
        x = rng.normal(0.4, 1.0, n)
        found, walsh, k = signed_rank(x), _walsh_sorted(x), _enumerated_critical(n) + 1
        assert found.method == "exact" and found.p_value == stats.wilcoxon(x).pvalue
        assert found.estimate == np.median(walsh)
        assert (found.low, found.high) == (walsh[k - 1], walsh[walsh.size - k])
    # the textbook table (two-sided 0.05): reject when the smaller rank sum is <= 8 at n = 10, <= 52 at n = 20
    assert _enumerated_critical(10) == 8
    x = rng.normal(size=20)
    walsh = _walsh_sorted(x)
    assert (signed_rank(x).low, signed_rank(x).high) == (walsh[52], walsh[walsh.size - 53])
    # 5 pairs or fewer can never reach p < 0.05 (the smallest two-sided p of 5 is 2/32): no interval
    assert signed_rank(np.arange(1.0, 6.0)).low is None and signed_rank(np.arange(1.0, 6.0)).p_value == 2 / 32


def test_normal_approximation_above_50_pairs_matches_scipy_and_its_critical_value():
    rng = np.random.default_rng(1)
    for x in (rng.normal(0.2, 1.0, 80), np.round(rng.normal(0.3, 1.0, 120), 1)):  # no ties; ties and zeros
        n = x.size
        found = signed_rank(x)
        assert found.method == f"normal approximation, n > {EXACT_MAX_N}"
        assert found.p_value == stats.wilcoxon(x, zero_method="zsplit", method="asymptotic", correction=True).pvalue
        _, ties = np.unique(np.abs(x), return_counts=True)
        se = np.sqrt((n * (n + 1) * (2 * n + 1) - np.sum(ties ** 3.0 - ties) / 2) / 24)
        # the smaller rank sum t rejects when (n(n+1)/4 - t - 0.5) / se > z_0.975
        k = 1 + max(t for t in range(n * (n + 1) // 4) if (n * (n + 1) / 4 - t - 0.5) / se > stats.norm.ppf(0.975))
        walsh = _walsh_sorted(x)
        assert (found.low, found.high) == (walsh[k - 1], walsh[walsh.size - k])


def _datasets(count=500):
    rng = np.random.default_rng(2026)
    for i in range(count):
        n = int(rng.integers(6, 31))
        shift = rng.normal(0.0, 0.8)
        if i % 3 == 0:
            yield rng.normal(shift, 1.0, n)  # continuous: exact test
        elif i % 3 == 1:
            yield np.round(rng.normal(shift, 1.0, n))  # many ties and zeros
        else:
            yield np.round(rng.normal(shift, 1.0, n), 1)  # a few ties


def test_interval_excludes_zero_exactly_when_the_test_rejects():
    counts = {"agree": 0, "zero at an endpoint": 0, "rejected": 0}
    for x in _datasets():
        found = signed_rank(x)
        assert found.p_value == stats.wilcoxon(x, zero_method="zsplit", method="exact").pvalue
        rejects = found.p_value < 0.05
        counts["rejected"] += rejects
        excludes = found.low is not None and (found.low > 0 or found.high < 0)
        if excludes == rejects:
            counts["agree"] += 1
            if rejects:
                assert np.sign(found.estimate) == np.sign(found.low)  # the estimate lies on the rejected side
        else:
            # the one edge: 0 is a Walsh average and the rejecting test leaves it as an endpoint
            assert rejects and 0.0 in (found.low, found.high) and 0.0 in _walsh_sorted(x)
            counts["zero at an endpoint"] += 1
    assert counts["agree"] + counts["zero at an endpoint"] == 500
    assert 100 < counts["rejected"] < 400 and counts["zero at an endpoint"] < 25  # both outcomes are exercised


def test_the_comparison_names_its_median_shift_and_keeps_each_sides_mean():
    dense = np.array([7.1, 8.0, 9.5, 6.2, 7.7, 8.8, 5.9, 9.0, 7.3, 8.4])
    pruned = dense + np.array([-1.9, -2.5, 0.4, -0.3, -1.1, -3.0, -0.2, 0.6, -1.5, -2.2])
    found = compare.wilcoxon(dense, pruned, metric="canary exposure, bits (16 repetitions)")
    direct = signed_rank(pruned - dense)
    assert (found.difference, found.low, found.high, found.p_value) == (direct.estimate, direct.low, direct.high,
                                                                        direct.p_value)
    assert (found.dense, found.pruned) == (pytest.approx(dense.mean()), pytest.approx(pruned.mean()))
    line = compare.decide([found])[0].line()
    assert found.p_value == stats.wilcoxon(pruned - dense).pvalue < 0.05 and found.high < 0  # test and interval agree
    assert (f"**lower**, {ESTIMATE} {found.difference:+.3f} [{found.low:+.3f}, {found.high:+.3f}], "
            f"p = {found.p_value:.3f}") in line
    assert (f"dense mean {dense.mean():.3f}, pruned mean {pruned.mean():.3f}, n = 10, Wilcoxon signed-rank "
            "(exact)") in line
    groups = {"pruned": [found]}
    assert ESTIMATE in compare.changes_markdown(groups) and compare.estimate_note({"x": []}) == ""
    # records saved before the estimate was named still load
    old = {key: value for key, value in found.to_dict().items() if key != "estimate"}
    assert compare.Comparison.from_dict(old).estimate is None
