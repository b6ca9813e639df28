"""Audit metrics and results against values computed by hand (or by an independent brute-force method)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hfprune.audit import intervals, metrics
from hfprune.audit.results import (
    CanaryExposureResult,
    LoyaltyResult,
    MembershipInferenceResult,
    MetricWithCI,
    RobustnessResult,
    result_from_dict,
    results_to_markdown,
)
from hfprune.audit.summaries import summarize_attack_log, summarize_exposure, summarize_loyalty, summarize_membership
from hfprune.errors import ConfigError

# JS divergence of p=[1,0] and q=[1/2,1/2] in nats (natural log, as Xu et al.'s code), with m=[3/4,1/4]:
# KL(p||m) = ln(4/3);  KL(q||m) = 1/2 ln(2/3) + 1/2 ln(2)
JS_HALF = math.sqrt(0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2)))


class FakeTensor:
    """Duck-types the torch calls the metrics use (detach().cpu().numpy()) without importing torch."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.data


# ----------------------------------------------------------------------------------------------------- loyalty
def test_loyalty_to_itself_is_one():
    logits = np.random.default_rng(0).normal(size=(20, 3))
    assert metrics.label_loyalty(logits, logits) == 1.0
    assert metrics.probability_loyalty(logits, logits) == pytest.approx(1.0, abs=1e-7)


def test_label_loyalty_three_of_four_agree():
    reference = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    other = [[0.7, 0.3], [0.4, 0.6], [0.45, 0.55], [0.1, 0.9]]  # third example flips
    assert metrics.label_loyalty(reference, other) == 0.75
    assert metrics.label_loyalty(FakeTensor(reference), FakeTensor(other)) == 0.75


def test_js_distance_known_distributions():
    assert metrics.js_distance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-7)
    assert metrics.js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(math.log(2)))  # disjoint: sqrt(ln 2)
    assert metrics.js_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(JS_HALF)
    rows = metrics.js_distance([[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(rows, [JS_HALF, 0.0], atol=1e-7)


def test_js_distance_is_symmetric_and_rejects_non_probabilities():
    assert metrics.js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(JS_HALF)
    with pytest.raises(ConfigError, match="q"):
        metrics.js_distance([0.5, 0.5], [2.0, -1.0])
    with pytest.raises(ConfigError, match="q"):
        metrics.js_distance([0.5, 0.5], [0.2, 0.3, 0.5])


def test_probability_loyalty_hand_case():
    reference = [[1.0, 0.0], [0.5, 0.5]]
    other = [[0.5, 0.5], [0.5, 0.5]]
    assert metrics.probability_loyalty(reference, other) == pytest.approx(1 - JS_HALF / 2)


def test_logits_and_probabilities_give_the_same_loyalty():
    rng = np.random.default_rng(1)
    ref_logits, oth_logits = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    ref_probs = np.exp(ref_logits) / np.exp(ref_logits).sum(axis=1, keepdims=True)
    oth_probs = np.exp(oth_logits) / np.exp(oth_logits).sum(axis=1, keepdims=True)
    from_logits = metrics.probability_loyalty(ref_logits, oth_logits)
    assert metrics.probability_loyalty(ref_probs, oth_probs) == pytest.approx(from_logits)
    assert metrics.probability_loyalty(ref_logits, oth_probs) == pytest.approx(from_logits)  # detected per input
    assert metrics.probability_loyalty(ref_logits, oth_logits, from_logits=True) == pytest.approx(from_logits)
    assert metrics.label_loyalty(ref_logits, oth_logits) == metrics.label_loyalty(ref_probs, oth_probs)
    # brute force: 1 - JS distance per row, averaged
    expected = np.mean([1 - math.sqrt(_js_divergence_nats(p, q)) for p, q in zip(ref_probs, oth_probs, strict=True)])
    assert from_logits == pytest.approx(expected)


def _js_divergence_nats(p, q):
    """JS divergence in nats (natural log), written out term by term in plain Python."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl_to_m(x):
        return sum(a * math.log(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)


def test_loyalty_rejects_mismatched_shapes():
    with pytest.raises(ConfigError, match="other"):
        metrics.label_loyalty(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="reference"):
        metrics.probability_loyalty(np.zeros(3), np.zeros(3))
    with pytest.raises(ConfigError, match="from_logits=False"):
        metrics.probability_loyalty(np.ones((2, 2)), np.ones((2, 2)), from_logits=False)


# ---------------------------------------------------------------------------------------------------- attacks
OUTCOMES = ["successful", "failed", "Successful", "skipped"]
WORD_PCTS = [10.0, math.nan, 30.0, math.nan]
QUERIES = [100, 500, 50, math.nan]


def test_attack_summaries_on_constructed_log():
    assert metrics.count_outcomes(OUTCOMES) == (2, 1, 1)
    assert metrics.attack_success_rate(OUTCOMES) == pytest.approx(2 / 3)
    assert metrics.accuracy_under_attack(OUTCOMES) == pytest.approx(1 / 4)
    assert metrics.clean_accuracy(OUTCOMES) == pytest.approx(3 / 4)
    assert metrics.mean_perturbed_word_pct(OUTCOMES, WORD_PCTS) == pytest.approx(20.0)
    assert metrics.mean_queries(OUTCOMES, QUERIES) == pytest.approx(650 / 3)
    assert metrics.mean_queries(OUTCOMES, QUERIES, over="successful") == pytest.approx(75.0)


def test_attack_summaries_edge_cases():
    assert math.isnan(metrics.attack_success_rate(["skipped", "skipped"]))
    assert math.isnan(metrics.mean_perturbed_word_pct(["failed"], [math.nan]))
    with pytest.raises(ConfigError, match="outcomes"):
        metrics.count_outcomes(["successful", "maximized"])
    with pytest.raises(ConfigError, match="outcomes"):
        metrics.count_outcomes([])
    with pytest.raises(ConfigError, match="queries"):
        metrics.mean_queries(OUTCOMES, [1, 2, 3])
    with pytest.raises(ConfigError, match="perturbed_word_pcts"):
        metrics.mean_perturbed_word_pct(["successful"], [math.nan])


# -------------------------------------------------------------------------------------------------------- ROC
def test_roc_auc_hand_cases():
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert metrics.roc_auc([0.3] * 6, [0, 1, 0, 1, 1, 0]) == 0.5
    # member 0.35 beats 0.1, loses to 0.4; member 0.8 beats both: 3 of 4 pairs
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # member 0.5 ties non-member 0.5 (counts 1/2) and beats 0.2; member 0.9 beats both: 3.5 of 4
    assert metrics.roc_auc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == 0.875


def test_roc_auc_matches_pairwise_count_and_trapezoid_area():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 6, size=40).astype(float)  # many ties
    member = rng.integers(0, 2, size=40)
    pos, neg = scores[member == 1], scores[member == 0]
    pairwise = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (pos.size * neg.size)
    fpr, tpr, _ = metrics.roc_curve(scores, member)
    trapezoid = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # sklearn's auc(fpr, tpr)
    assert metrics.roc_auc(scores, member) == pytest.approx(pairwise)
    assert trapezoid == pytest.approx(pairwise)


def test_roc_curve_points():
    fpr, tpr, thresholds = metrics.roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_tpr_at_fpr_and_balanced_accuracy():
    # non-members score 0..9; members 5.5, 8.5, 9.5, 10, 11
    scores = [*range(10), 5.5, 8.5, 9.5, 10, 11]
    member = [0] * 10 + [1] * 5
    assert metrics.tpr_at_fpr(scores, member, 0.0) == pytest.approx(3 / 5)  # threshold above 9: 9.5, 10, 11
    assert metrics.tpr_at_fpr(scores, member, 0.1) == pytest.approx(4 / 5)  # threshold 8.5: one false positive
    assert metrics.tpr_at_fpr(scores, member, 0.35) == pytest.approx(4 / 5)  # 5.5 needs 4 false positives
    assert metrics.tpr_at_fpr(scores, member, 0.4) == 1.0
    # best threshold 8.5: TPR 0.8, TNR 0.9
    assert metrics.balanced_accuracy(scores, member) == pytest.approx((0.8 + 0.9) / 2)
    assert metrics.balanced_accuracy([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert metrics.balanced_accuracy([0.3] * 4, [0, 1, 0, 1]) == 0.5


def test_membership_inputs_are_validated():
    with pytest.raises(ConfigError, match="both members and non-members"):
        metrics.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ConfigError, match="is_member"):
        metrics.roc_auc([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ConfigError, match="is_member"):
        metrics.roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ConfigError, match="scores"):
        metrics.roc_auc([0.1, math.nan], [0, 1])
    with pytest.raises(ConfigError, match="fpr"):
        metrics.tpr_at_fpr([0.1, 0.2], [0, 1], 1.5)


# --------------------------------------------------------------------------------------------------- exposure
def test_exposure_definition():
    assert metrics.exposure(1, 2**10) == 10.0
    assert metrics.exposure(2**10, 2**10) == 0.0
    np.testing.assert_allclose(metrics.exposure([1, 2, 4], 8), [3.0, 2.0, 1.0])
    with pytest.raises(ConfigError, match="canary_rank"):
        metrics.exposure(0, 8)
    with pytest.raises(ConfigError, match="canary_rank"):
        metrics.exposure(9, 8)


def test_exposure_exact_counts_ties_as_carlini_et_al():
    # space of 4 (canary 2.0 included); 3 candidates <= 2.0 (1.0 and both 2.0s) -> rank 3 -> log2(4) - log2(3)
    # (Carlini et al. 2019 count ties; counting only strictly lower candidates gave rank 2 and exposure 1.0)
    assert metrics.exposure_exact(2.0, [3.0, 1.0, 2.0, 2.0]) == pytest.approx(math.log2(4 / 3))
    assert metrics.exposure_exact(1.0, [3.0, 1.0, 2.0, 2.0]) == pytest.approx(2.0)
    np.testing.assert_allclose(metrics.exposure_exact([1.0, 3.0], [3.0, 1.0, 2.0, 2.0]), [2.0, 0.0])


def test_exact_and_skewnorm_exposure_agree_on_known_skewnormal():
    from scipy import stats

    shape = 4.0
    # 20000 candidates put ~78 below the 2**-8 quantile: the exact rank's noise is ~0.16 bits
    sample = stats.skewnorm.rvs(shape, loc=1.0, scale=2.0, size=20000, random_state=np.random.default_rng(3))
    canary = stats.skewnorm.ppf(2.0**-8, shape, loc=1.0, scale=2.0)  # true exposure: 8 bits
    estimated = metrics.exposure_from_perplexities(canary, sample, space_size=sample.size + 1)
    exact = metrics.exposure_exact(canary, np.r_[sample, canary])
    assert estimated == pytest.approx(8.0, abs=0.3)
    assert exact == pytest.approx(8.0, abs=0.5)
    assert exact == pytest.approx(estimated, abs=0.5)


def test_skewnorm_exposure_is_capped_by_the_space():
    sample = np.random.default_rng(4).normal(size=200)
    assert metrics.exposure_from_perplexities(-50.0, sample, space_size=2**10) == 10.0
    assert metrics.exposure_from_perplexities(-50.0, sample) > 100  # logcdf: no underflow to inf
    with pytest.raises(ConfigError, match="reference_log_perplexities"):
        metrics.exposure_from_perplexities(0.0, [1.0] * 20)


# -------------------------------------------------------------------------------------------------- bootstrap
def _mean(values):
    return float(np.mean(values))


def test_bootstrap_is_deterministic_for_a_seed():
    data = np.random.default_rng(5).normal(size=100)
    first = metrics.bootstrap_ci(_mean, data, n_resamples=200, seed=7)
    assert metrics.bootstrap_ci(_mean, data, n_resamples=200, seed=7) == first
    assert metrics.bootstrap_ci(_mean, data, n_resamples=200, seed=8) != first


def test_bootstrap_contains_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(6)
    small, large = rng.normal(size=50), rng.normal(size=2000)
    low_s, high_s = metrics.bootstrap_ci(_mean, small, n_resamples=300)
    low_l, high_l = metrics.bootstrap_ci(_mean, large, n_resamples=300)
    assert low_s < small.mean() < high_s
    assert low_l < large.mean() < high_l
    assert high_l - low_l < (high_s - low_s) / 3  # width ~ 1/sqrt(n): about 6x narrower
    # the 95% interval of a mean is about +-1.96 standard errors
    assert high_l - low_l == pytest.approx(2 * 1.96 * large.std() / math.sqrt(large.size), rel=0.2)


def test_bootstrap_resamples_rows_jointly_and_stratifies():
    x = np.arange(30.0)
    assert metrics.bootstrap_ci(lambda a, b: float(np.max(np.abs(a - b))), x, x.copy(), n_resamples=50) == (0, 0)
    member = np.array([1] * 3 + [0] * 27)
    counts = metrics.bootstrap_ci(lambda m: float(m.sum()), member, n_resamples=100, stratify=member)
    assert counts == (3.0, 3.0)
    low, high = metrics.bootstrap_ci(metrics.roc_auc, x, member, n_resamples=100, stratify=member)
    assert 0.0 <= low <= high <= 1.0
    with pytest.raises(ConfigError, match=r"arrays\[1\]"):
        metrics.bootstrap_ci(metrics.roc_auc, x, member[:5])
    with pytest.raises(ConfigError, match="confidence"):
        metrics.bootstrap_ci(_mean, x, confidence=95)


# ---------------------------------------------------------------------------------------------------- results
def test_metric_with_ci_format():
    assert MetricWithCI(0.8734, 0.8512, 0.8941).format() == "0.873 [0.851, 0.894]"
    assert MetricWithCI(np.float64(0.5)).format() == "0.500"
    assert MetricWithCI(math.nan).format() == "n/a"
    assert MetricWithCI.from_dict(MetricWithCI(math.nan).to_dict()).to_dict() == {
        "value": None, "low": None, "high": None, "n": None, "method": None}
    estimate = MetricWithCI(0.5, 0.2, 0.8, n=np.int64(10), method="Clopper-Pearson")
    assert MetricWithCI.from_dict(json.loads(json.dumps(estimate.to_dict()))) == estimate
    assert estimate.n == 10 and isinstance(estimate.n, int)


def _example_results():
    robustness = summarize_attack_log(OUTCOMES * 5, WORD_PCTS * 5, QUERIES * 5, model_name="minilm", sparsity=0.5,
                                      recipe="textfooler_jin2019", query_budget=500, n_resamples=100, seed=1)
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(40, 3))
    loyalty = summarize_loyalty(logits, logits + rng.normal(scale=0.5, size=(40, 3)), model_name="minilm",
                                sparsity=0.5, reference_name="minilm-dense", n_resamples=100)
    member = np.array([1, 0] * 30)
    membership = summarize_membership(rng.normal(size=60) + member, member, model_name="minilm", sparsity=0.5,
                                      attack="loss", n_resamples=100)
    exposure = summarize_exposure([3.0, 5.0, 7.5], model_name="minilm", sparsity=0.5, repetitions=10,
                                  space_size=10**6, method="exact", n_resamples=100)
    return [robustness, loyalty, membership, exposure]


def test_summaries_hold_the_metric_values():
    robustness, loyalty, membership, exposure = _example_results()
    assert isinstance(robustness, RobustnessResult) and isinstance(loyalty, LoyaltyResult)
    assert robustness.n_examples == 20
    assert robustness.attack_success_rate.value == pytest.approx(2 / 3)
    assert robustness.accuracy_under_attack.value == pytest.approx(1 / 4)
    assert robustness.clean_accuracy.value == pytest.approx(3 / 4)
    assert robustness.mean_perturbed_word_pct.value == pytest.approx(20.0)
    assert robustness.mean_queries.value == pytest.approx(650 / 3)
    for metric in (robustness.attack_success_rate, loyalty.probability_loyalty, membership.auc):
        assert metric.low <= metric.value <= metric.high
    assert isinstance(membership, MembershipInferenceResult)
    assert (membership.n_members, membership.n_nonmembers) == (30, 30)
    assert membership.roc_fpr[0] == 0.0 and membership.roc_tpr[-1] == 1.0
    assert isinstance(exposure, CanaryExposureResult)
    assert exposure.mean_exposure.value == pytest.approx(15.5 / 3)
    assert (exposure.max_exposure, exposure.n_canaries) == (7.5, 3)


def test_results_round_trip_through_json():
    for result in _example_results():
        payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert type(result).from_dict(payload) == result
        assert result_from_dict(payload) == result


def test_results_from_dict_rejects_bad_payloads():
    payload = _example_results()[3].to_dict()
    with pytest.raises(ConfigError, match="unknown key"):
        CanaryExposureResult.from_dict({**payload, "extra": 1})
    with pytest.raises(ConfigError, match="kind"):
        RobustnessResult.from_dict(payload)
    with pytest.raises(ConfigError, match="method"):
        CanaryExposureResult.from_dict({**payload, "method": "guess"})


def test_markdown_has_header_and_one_row_per_result():
    results = _example_results()
    lines = results_to_markdown(results).strip().splitlines()
    assert lines[0].startswith("| model | sparsity |")
    assert set(lines[1].replace("|", "").split()) == {"---"}
    assert len(lines) == 2 + len(results)
    assert all(line.startswith("| minilm | 50% |") for line in lines[2:])
    assert "0.667 [" in lines[2]  # success rate with its interval
    with pytest.raises(ConfigError, match="results"):
        results_to_markdown([])


# ---------------------------------------------------------------------------------------------------- intervals
def test_exact_interval_of_all_successes_is_not_zero_width():
    # Clopper-Pearson at k = n: the lower end solves p^n = alpha/2, so 25/25 gives 0.025^(1/25) = 0.8628
    assert intervals.proportion_ci(25, 25) == pytest.approx((0.025 ** (1 / 25), 1.0))
    assert intervals.proportion_ci(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    # Wilson: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) at p = 0.5, n = 10
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z**2 / 400)
    assert intervals.proportion_ci(5, 10, method="wilson") == pytest.approx(
        ((0.5 + z**2 / 20 - half) / (1 + z**2 / 10), (0.5 + z**2 / 20 + half) / (1 + z**2 / 10)))
    assert all(math.isnan(end) for end in intervals.proportion_ci(0, 0))
    with pytest.raises(ConfigError, match="interval"):
        intervals.proportion_ci(1, 2, method="wald")


def test_attack_success_of_every_attacked_example_has_the_exact_interval():
    # the defect of issue 16: the percentile bootstrap gave [1.000, 1.000] for 25 successes out of 25
    result = summarize_attack_log(["successful"] * 25 + ["skipped"] * 5, [10.0] * 30, [50.0] * 30, model_name="m",
                                  sparsity=0.5, recipe="deepwordbug", n_resamples=200)
    asr = result.attack_success_rate
    assert (asr.value, asr.n, asr.method) == (1.0, 25, "Clopper-Pearson")
    assert (asr.low, asr.high) == pytest.approx((0.8628, 1.0), abs=1e-4)
    assert result.clean_accuracy.n == 30 and result.clean_accuracy.value == pytest.approx(25 / 30)
    assert result.mean_perturbed_word_pct.format(1) == "10.0 [10.0, 10.0]"  # constant data: no spread to resample
    assert result.outcomes == ["successful"] * 25 + ["skipped"] * 5


def test_bca_interval_of_a_mean_and_of_an_auc():
    data = np.random.default_rng(3).normal(size=400)
    low, high = intervals.bca_ci(intervals.mean_statistic, data, n_resamples=2000)
    assert low < data.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * data.std() / math.sqrt(data.size), rel=0.15)
    assert intervals.bca_ci(intervals.mean_statistic, data, n_resamples=500, seed=4) == intervals.bca_ci(
        intervals.mean_statistic, data, n_resamples=500, seed=4)
    assert all(math.isnan(end) for end in intervals.bca_ci(intervals.mean_statistic, data[:1]))
    members, nonmembers = np.round(data[:150] + 0.5, 1), np.round(data[150:], 1)  # rounded: many ties
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(np.r_[np.ones(150), np.zeros(250)], np.r_[members, nonmembers])
    assert float(intervals.auc_two_sample(members, nonmembers)) == pytest.approx(expected)
    low, high = intervals.bca_ci(intervals.auc_two_sample, members, nonmembers, paired=False, n_resamples=500)
    assert low < expected < high


def test_balanced_accuracy_from_ks_matches_the_roc_curve():
    rng = np.random.default_rng(11)
    for _ in range(10):
        scores, member = np.round(rng.normal(size=80), 1), rng.integers(0, 2, size=80)
        fpr, tpr, _ = metrics.roc_curve(scores, member)
        assert metrics.balanced_accuracy(scores, member) == pytest.approx(np.max((tpr + 1 - fpr) / 2))


def test_tpr_at_an_unresolved_fpr_is_not_a_number():
    rng = np.random.default_rng(12)
    member = np.r_[np.ones(600), np.zeros(600)].astype(bool)
    result = summarize_membership(rng.normal(size=1200) + member, member, model_name="m", sparsity=0.0,
                                  attack="loss", n_resamples=0)
    assert math.isnan(result.tpr_at_0_1pct_fpr.value)  # 0.6 expected false positives: not resolved
    assert result.tpr_cell(0.001) == "unresolved: needs 5000 non-members (FPR >= 0.83% resolved)"
    one_pct = summarize_membership(result.scores, member, model_name="m", sparsity=0.0, attack="loss",
                                   n_resamples=300).tpr_at_1pct_fpr  # 6 expected false positives: resolved
    assert one_pct.value == pytest.approx(metrics.tpr_at_fpr(result.scores, member, 0.01))
    assert (one_pct.n, one_pct.method) == (1200, "BCa bootstrap") and one_pct.low < one_pct.value < one_pct.high
    assert "unresolved" in results_to_markdown([result])


def test_vectorised_tpr_at_fpr_matches_the_roc_curve_with_ties():
    rng = np.random.default_rng(13)
    for fpr in (0.0, 0.05, 0.1, 0.3, 1.0):
        scores, member = np.round(rng.normal(size=(2, 60)), 1), rng.integers(0, 2, size=(2, 60)).astype(bool)
        batch = intervals.tpr_two_sample(np.stack([scores[0][member[0]][:20], scores[1][member[1]][:20]]),
                                         np.stack([scores[0][~member[0]][:20], scores[1][~member[1]][:20]]), fpr)
        for row in range(2):
            labels = np.r_[np.ones(20), np.zeros(20)]
            values = np.r_[scores[row][member[row]][:20], scores[row][~member[row]][:20]]
            assert batch[row] == pytest.approx(metrics.tpr_at_fpr(values, labels, fpr))


def test_exposure_of_few_canaries_lists_the_values_without_an_interval():
    few = summarize_exposure([3.0, 9.0], model_name="m", sparsity=0.0, repetitions=2, space_size=10**6,
                             method="exact")
    assert not few.mean_exposure.has_interval and few.mean_exposure.n == 2
    assert few.exposure_cell() == "6.00 (values 3.00, 9.00; too few canaries for an interval)"
    nine = summarize_exposure(np.arange(9.0), model_name="m", sparsity=0.0, repetitions=2, space_size=10**6,
                              method="exact")
    assert not nine.mean_exposure.has_interval  # a studentized interval holds its coverage from 10 canaries on
    assert nine.exposure_cell().startswith("4.00 (values 0.00, 1.00, ")
    many = summarize_exposure(np.arange(10.0), model_name="m", sparsity=0.0, repetitions=2, space_size=10**6,
                              method="exact", n_resamples=500)
    assert many.mean_exposure.method == "studentized bootstrap"
    low, high = intervals.studentized_mean_ci(np.arange(10.0), n_resamples=500, support=(0, math.log2(10**6)))
    assert (many.mean_exposure.low, many.mean_exposure.high) == (low, high)
    assert many.exposure_cell() == f"4.50 [{low:.2f}, {high:.2f}]"


def test_studentized_mean_interval_matches_its_definition_resample_by_resample():
    values = np.array([0.1, 0.4, 0.4, 1.2, 2.0, 3.1, 6.5, 13.0])
    low, high = intervals.studentized_mean_ci(values, n_resamples=399, seed=3)
    rows = np.random.default_rng(3).integers(0, values.size, size=(399, values.size))
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
    t = sorted((values[r].mean() - mean) / (values[r].std(ddof=1) / math.sqrt(values.size)) for r in rows)
    # the ceil(q * 399)-th smallest t (numpy's inverted_cdf quantile): the 390th and the 10th
    assert (low, high) == pytest.approx((mean - t[389] * se, mean - t[9] * se))
    assert high - mean > mean - low  # right-skewed data: the longer arm above the mean
    batch = intervals.studentized_mean_ci(np.stack([values, values[::-1] * 2]), n_resamples=399, seed=3)
    single = intervals.studentized_mean_ci(values[::-1] * 2, n_resamples=399, seed=3)
    assert (batch[0][0], batch[1][0]) == pytest.approx((low, high))
    assert (batch[0][1], batch[1][1]) == pytest.approx(single)


def test_studentized_mean_interval_edge_cases():
    assert intervals.studentized_mean_ci(np.full(10, 13.0)) == (13.0, 13.0)  # constant: no spread to resample
    # 8 of 10 at the top: 0.8 ** 10 = 11% of resamples hold only that value (se* = 0, mean* above the mean,
    # t* = +inf), so the lower end is unbounded and the support clips it; the upper end stays finite
    values = np.r_[np.full(8, 13.0), 2.0, 5.0]
    low, high = intervals.studentized_mean_ci(values)
    assert low == -math.inf and math.isfinite(high)
    assert intervals.studentized_mean_ci(values, support=(0.0, 13.3)) == (0.0, min(high, 13.3))
    with pytest.raises(ConfigError, match="values: expected at least 2"):
        intervals.studentized_mean_ci(np.array([1.0]))
    with pytest.raises(ConfigError, match="n_resamples"):
        intervals.studentized_mean_ci(values, n_resamples=0)
