"""Paired dense-vs-pruned tests against hand-computed values and scipy / scikit-learn on constructed data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from hfprune.audit import compare
from hfprune.errors import ConfigError


def test_holm_against_hand_computed_values():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06 (monotone)
    np.testing.assert_allclose(compare.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(compare.holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(compare.holm([0.02]), [0.02])
    with pytest.raises(ConfigError, match="p_values"):
        compare.holm([1.5])


def test_mcnemar_is_a_binomial_test_on_the_discordant_pairs():
    dense = np.r_[np.ones(10), np.zeros(2), np.ones(80), np.zeros(8)].astype(bool)
    pruned = np.r_[np.zeros(10), np.ones(2), np.ones(80), np.zeros(8)].astype(bool)
    result = compare.compare_accuracy(dense, pruned)
    # two-sided exact binomial: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert result.p_value == pytest.approx(158 / 4096)
    assert result.p_value == pytest.approx(stats.binomtest(2, 12).pvalue)
    assert (result.dense, result.pruned, result.difference, result.n) == (0.9, 0.82, pytest.approx(-0.08), 100)
    theta = stats.binomtest(2, 12).proportion_ci(method="exact")
    assert (result.low, result.high) == pytest.approx((0.12 * (2 * theta.low - 1), 0.12 * (2 * theta.high - 1)))
    assert result.low < result.difference < result.high < 0
    [decided] = compare.decide([result])
    assert decided.verdict == "lower" and decided.p_adjusted == pytest.approx(158 / 4096)
    same = compare.compare_accuracy(dense, dense)
    # no discordant pair: +- the Clopper-Pearson upper bound of 0 of 100, 1 - 0.025^(1/100) = 0.0362
    bound = 1 - 0.025 ** (1 / 100)
    assert (same.p_value, same.difference) == (1.0, 0.0)
    assert (same.low, same.high) == pytest.approx((-bound, bound))
    with pytest.raises(ConfigError, match="accuracy"):
        compare.compare_accuracy(dense, pruned[:-1])


def test_attack_comparison_uses_examples_both_models_classify_correctly():
    dense = ["successful"] * 5 + ["failed"] * 5 + ["skipped", "failed"]
    pruned = ["successful"] * 9 + ["failed"] + ["failed", "skipped"]
    result = compare.compare_attack(dense, pruned, recipe="deepwordbug")
    assert result.n == 10  # the last two: one model skipped them
    assert (result.dense, result.pruned) == (0.5, 0.9)
    assert result.p_value == pytest.approx(stats.binomtest(4, 4).pvalue)  # 4 flips only on the pruned model: 0.125
    assert "deepwordbug" in result.metric
    assert compare.compare_attack(["skipped"], ["failed"]) is None


def _placements_brute_force(scores, member):
    """DeLong's structural components from the full pairwise comparison matrix."""
    pos, neg = scores[member], scores[~member]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def test_delong_matches_the_pairwise_definition_and_sklearn():
    rng = np.random.default_rng(0)
    member = np.r_[np.ones(60), np.zeros(90)].astype(bool)
    signal = rng.normal(size=150)
    dense = np.round(signal + 0.8 * member, 1)  # rounded: ties within and across classes
    pruned = np.round(signal + 0.3 * member + rng.normal(scale=0.5, size=150), 1)
    result = compare.delong(dense, pruned, member)
    assert result.dense == pytest.approx(roc_auc_score(member, dense))
    assert result.pruned == pytest.approx(roc_auc_score(member, pruned))
    v10 = np.stack([_placements_brute_force(s, member)[0] for s in (dense, pruned)])
    v01 = np.stack([_placements_brute_force(s, member)[1] for s in (dense, pruned)])
    cov = np.cov(v10) / 60 + np.cov(v01) / 90
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = (result.pruned - result.dense) / se
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert (result.low, result.high) == pytest.approx((result.difference - 1.959964 * se,
                                                       result.difference + 1.959964 * se), abs=1e-6)
    assert result.p_value < 0.05 and compare.decide([result])[0].verdict == "lower"
    same = compare.delong(dense, dense, member)
    assert (same.difference, same.p_value) == (0.0, 1.0)
    # a constant score has no spread to judge a difference by: untested, not a certain "lower"
    perfect, constant = member.astype(float), np.zeros(150)
    degenerate = compare.delong(perfect, constant, member)
    assert degenerate.difference == pytest.approx(-0.5) and math.isnan(degenerate.p_value)
    assert compare.decide([degenerate])[0].verdict is None
    assert "**not tested**, -0.500, p n/a" in degenerate.line()


def test_wilcoxon_signed_rank_against_the_exact_distribution():
    dense = np.arange(5.0)
    result = compare.wilcoxon(dense, dense + np.array([1, 2, 3, 4, 5]), metric="exposure")
    assert result.p_value == pytest.approx(2 / 32)  # all 5 differences positive: 2 of 2^5 sign patterns as extreme
    # the Hodges-Lehmann shift (median of the Walsh averages of 1..5); 5 pairs can never reject: no interval
    assert result.difference == 3.0 and result.low is None
    ten = compare.wilcoxon(np.zeros(10), np.arange(1.0, 11.0), metric="exposure")
    assert ten.p_value == pytest.approx(2 / 1024)
    assert ten.p_value == pytest.approx(stats.wilcoxon(np.arange(1.0, 11.0)).pvalue)
    assert ten.difference == 5.5 and 0 < ten.low < 5.5 < ten.high
    few = compare.wilcoxon([3.0, 9.0], [4.0, 12.0], metric="exposure")
    assert few.low is None and few.p_value == pytest.approx(0.5)  # 2 canaries: no interval, p >= 1/2
    assert compare.wilcoxon([1.0, 2.0], [1.0, 2.0], metric="exposure").p_value == 1.0


def test_verdicts_after_holm_across_one_report():
    def made(p, difference):
        return compare.Comparison("m", 0.5, 0.5 + difference, difference, None, None, p, 100, "test")

    decided = compare.decide([made(0.01, 0.1), made(0.02, -0.1), made(0.04, 0.2), made(math.nan, 0.1)])
    # Holm: 0.01 * 3 = 0.03, 0.02 * 2 = 0.04, 0.04 * 1 -> 0.04
    assert [c.verdict for c in decided] == ["higher", "lower", "higher", None]
    assert [c.p_adjusted for c in decided[:3]] == pytest.approx([0.03, 0.04, 0.04])
    decided = compare.decide([made(0.02, 0.1), made(0.03, 0.1), made(0.04, -0.1), made(0.5, 0.1)])
    # 0.02 * 4 = 0.08: nothing survives
    assert {c.verdict for c in decided} == {"no detectable change"}
    line = decided[0].line()
    assert line.startswith("m: **no detectable change**, +0.100, p = 0.020 (Holm p = 0.080); dense 0.500, pruned 0.600")
    assert compare.Comparison.from_dict(json.loads(json.dumps(decided[0].to_dict()))) == decided[0]


def test_compare_models_pairs_every_record_both_models_kept():
    from hfprune.audit.summaries import summarize_attack_log, summarize_exposure, summarize_membership

    rng = np.random.default_rng(5)
    member = np.r_[np.ones(40), np.zeros(40)].astype(bool)

    def records(correct, outcomes, scores, exposures, metric="accuracy"):
        return compare.PairedRecords(
            {"metric": metric, "value": float(np.mean(correct)), "per_example": list(map(float, correct))},
            [summarize_attack_log(outcomes, np.zeros(len(outcomes)), np.ones(len(outcomes)), model_name="m",
                                  sparsity=0.0, recipe="deepwordbug", n_resamples=0)],
            [summarize_membership(scores, member, model_name="m", sparsity=0.0, attack="loss", n_resamples=0)],
            [summarize_exposure(exposures, model_name="m", sparsity=0.0, repetitions=10, space_size=10**4,
                                method="exact", n_resamples=0)])

    correct = rng.integers(0, 2, 50)
    scores = rng.normal(size=80) + member
    dense = records(correct, ["successful", "failed"] * 5, scores, np.arange(10.0))
    pruned = records(1 - correct, ["successful"] * 10, scores + rng.normal(size=80), np.arange(10.0) + 1)
    found = compare.compare_models(dense, pruned)
    assert [c.metric for c in found] == [
        "accuracy", "attack success (deepwordbug, on examples both classify correctly)", "MIA AUC (loss)",
        "loss on members (nats)", "loss on non-members (nats)", "canary exposure, bits (10 repetitions)"]
    assert found[0].test.startswith("exact McNemar") and found[0].n == 50
    assert found[1].p_value == pytest.approx(stats.binomtest(5, 5).pvalue)
    # ten equal differences of 1: scipy's exact distribution (the statistic is untied-valued: 55 of 55)
    assert found[5].p_value == pytest.approx(2 / 1024) and found[5].difference == 1.0
    # a record of another length (e.g. a different sample) is not paired; LM quality is compared on per-text NLL
    other = records(correct[:10], ["successful"] * 4, scores, np.arange(10.0), metric="perplexity")
    assert [c.metric for c in compare.compare_models(other, records(correct[:10] + 1.0, ["failed"] * 4, scores,
                                                                    np.arange(10.0), metric="perplexity"))][0] == (
        "per-text loss (NLL, nats)")
    assert "accuracy" not in [c.metric for c in compare.compare_models(dense, other)]
    text = compare.changes_markdown(compare.decide_groups({"pruned": found}))
    assert text.startswith("## What pruning changed") and "across the 6 comparisons" in text


def test_the_loss_attack_auc_is_split_into_the_members_and_the_non_members_loss():
    """Constructed: the pruned model's loss drops on members only (it fits them more closely) and is unchanged on
    non-members, so its loss attack's AUC rises; the two tests say which side moved (scipy's paired t-test)."""
    rng = np.random.default_rng(11)
    member = np.r_[np.ones(60), np.zeros(60)].astype(bool)
    dense_loss = rng.gamma(2.0, 0.2, size=120) + 0.2 * ~member
    pruned_loss = dense_loss.copy()
    pruned_loss[member] -= rng.uniform(0.02, 0.1, size=60)
    pruned_loss[~member] += rng.normal(0, 0.01, size=60)
    members, others = compare.member_losses(-dense_loss, -pruned_loss, member)
    assert (members.metric, others.metric) == compare.MEMBER_LOSS_METRICS
    assert members.dense == pytest.approx(dense_loss[member].mean())
    assert members.pruned == pytest.approx(pruned_loss[member].mean())
    for found, side in ((members, member), (others, ~member)):
        expected = stats.ttest_rel(pruned_loss[side], dense_loss[side])
        assert found.p_value == pytest.approx(expected.pvalue, rel=1e-9) and found.n == 60
        assert (found.low, found.high) == pytest.approx(tuple(expected.confidence_interval(0.95)), rel=1e-9)
        assert found.difference == pytest.approx((pruned_loss[side] - dense_loss[side]).mean())
    assert members.p_value < 1e-9 and members.high < 0 and others.p_value > 0.05
    assert compare.delong(-dense_loss, -pruned_loss, member).difference > 0  # the AUC rose
    with pytest.raises(ConfigError, match="loss attack scores: expected 120 dense and pruned scores"):
        compare.member_losses(-dense_loss, -pruned_loss[:-1], member)


def test_an_lm_extraction_ranking_is_compared_once_beside_the_loss_attack():
    """Constructed LM records: the zlib-ratio ranking gets DeLong's test (its AUC against sklearn's); the perplexity
    ranking orders texts as the loss attack does, so it is tested only when the loss attack did not run; several
    seeds give one test per seed."""
    from types import SimpleNamespace

    from hfprune.audit.seeds import compare_seeds
    from hfprune.audit.summaries import summarize_membership

    rng = np.random.default_rng(3)
    member = np.r_[np.ones(50), np.zeros(50)].astype(bool)
    zlib_bits = rng.uniform(200, 600, size=100)
    dense_loss = rng.gamma(3.0, 0.6, size=100) + 0.3 * ~member
    pruned_loss = dense_loss - 0.4 * member + rng.normal(0, 0.05, size=100)

    def records(loss, attacks=("loss",)):
        def result(scores, attack):
            return summarize_membership(scores, member, model_name="m", sparsity=0.0, attack=attack, n_resamples=0)
        privacy = SimpleNamespace(membership=[result(-loss, a) for a in attacks], exposure=[],
                                  extraction=[result(-loss, "perplexity"), result(-loss / zlib_bits, "zlib_ratio")])
        return compare.PairedRecords.of(None, SimpleNamespace(robustness=[], privacy=privacy))

    found = compare.compare_models(records(dense_loss), records(pruned_loss))
    assert [c.metric for c in found] == ["MIA AUC (loss)", *compare.MEMBER_LOSS_METRICS,
                                         "extraction AUC (zlib_ratio)"]
    zlib = found[-1]
    expected = compare.delong(-dense_loss / zlib_bits, -pruned_loss / zlib_bits, member)
    assert (zlib.p_value, zlib.difference) == (expected.p_value, expected.difference)
    assert zlib.pruned == pytest.approx(roc_auc_score(member, -pruned_loss / zlib_bits))
    assert zlib.difference > 0 and zlib.p_value < 0.01  # the members' loss fell: the ranking separates them better
    # without the loss attack, the perplexity ranking is the only test of that AUC
    alone = compare.compare_models(records(dense_loss, ()), records(pruned_loss, ()))
    assert [c.metric for c in alone] == ["extraction AUC (perplexity)", "extraction AUC (zlib_ratio)"]
    assert alone[0].p_value == pytest.approx(found[0].p_value)
    by_metric = compare_seeds([records(dense_loss)] * 2, [records(pruned_loss), records(dense_loss)], [0, 1])
    assert [c.metric for c in by_metric["extraction AUC (zlib_ratio)"]] == [
        "extraction AUC (zlib_ratio), seed 0", "extraction AUC (zlib_ratio), seed 1"]
    assert by_metric["extraction AUC (zlib_ratio)"][1].difference == 0
