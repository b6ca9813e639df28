"""The robustness audit end to end, offline: the real MiniLM fine-tuned on an SST-2 slice and a one-shot pruned copy,
attacked by DeepWordBug and PWWS (WordNet from NLTK_DATA) on a handful of SST-2 dev sentences."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.audit]

N_EXAMPLES = 5
QUERY_BUDGET = 100


def in_unit_interval(metric) -> bool:
    return 0.0 <= metric.value <= 1.0 and (metric.low is None or metric.low <= metric.value <= metric.high)


@pytest.fixture(scope="module")
def report(finetuned_minilm_dir, tmp_path_factory):
    import torch
    from transformers import AutoModelForSequenceClassification

    from hfprune import PruningConfig, prune
    from hfprune.audit.robustness import AuditConfig, AuditTarget, RobustnessAudit
    from hfprune.models import load_tokenizer

    torch.set_num_threads(1)  # 2 shared cores: one thread is faster than two fighting
    tokenizer = load_tokenizer(str(finetuned_minilm_dir))
    dense = AutoModelForSequenceClassification.from_pretrained(finetuned_minilm_dir).eval()
    pruned = copy.deepcopy(dense)
    prune(pruned, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    config = AuditConfig(recipes=["deepwordbug", "pwws"], n_examples=N_EXAMPLES, query_budget=QUERY_BUDGET,
                         n_loyalty_examples=64, max_length=64, n_resamples=200, progress=False,
                         output_dir=str(tmp_path_factory.mktemp("robustness-report")))
    targets = [AuditTarget("dense", dense, tokenizer), AuditTarget("pruned-50", pruned, tokenizer)]
    return RobustnessAudit(config).run(targets)


def test_same_sample_and_budget_for_both_models(report):
    assert len(report.sample) == N_EXAMPLES
    for recipe in ("deepwordbug", "pwws"):
        logs = [report.log(name, recipe) for name in ("dense", "pruned-50")]
        assert {log.sample_fingerprint for log in logs} == {report.sample.fingerprint()}
        for log in logs:
            assert [r.index for r in log.records] == list(report.sample.indices)
            assert [r.original for r in log.records] == list(report.sample.inputs)
            assert all(1 <= r.num_queries <= QUERY_BUDGET for r in log.records)
            assert log.query_budget == QUERY_BUDGET


def test_metrics_are_within_range(report):
    assert report.models["dense"] == 0.0 and 0.1 < report.models["pruned-50"] < 0.5  # embeddings are not pruned
    assert [(r.model_name, r.recipe) for r in report.robustness] == [
        ("dense", "deepwordbug"), ("pruned-50", "deepwordbug"), ("dense", "pwws"), ("pruned-50", "pwws")]
    for result in report.robustness:
        assert result.n_examples == N_EXAMPLES and result.query_budget == QUERY_BUDGET
        assert in_unit_interval(result.clean_accuracy) and in_unit_interval(result.accuracy_under_attack)
        assert result.accuracy_under_attack.value <= result.clean_accuracy.value
        rate = result.attack_success_rate.value
        assert math.isnan(rate) or 0.0 <= rate <= 1.0
        pct = result.mean_perturbed_word_pct.value
        assert math.isnan(pct) or 0.0 < pct <= 100.0
        queries = result.mean_queries.value
        assert math.isnan(queries) or 1.0 <= queries <= QUERY_BUDGET
    dense_dwb = report.robustness[0]
    assert dense_dwb.clean_accuracy.value >= 0.4  # the fine-tuned model is about 80% accurate on SST-2 dev
    for log in report.attack_logs:
        for record in log.records:
            if record.outcome == "successful":
                assert record.perturbed != record.original and record.perturbed_label != record.ground_truth
            if record.outcome == "skipped":
                assert record.original_label != record.ground_truth


def test_loyalty_of_the_dense_model_to_itself_is_one(report):
    itself, pruned = report.loyalty
    assert (itself.model_name, itself.reference_name) == ("dense", "dense")
    assert itself.label_loyalty.value == 1.0
    assert itself.probability_loyalty.value == pytest.approx(1.0, abs=1e-9)
    assert in_unit_interval(pruned.label_loyalty) and in_unit_interval(pruned.probability_loyalty)
    assert itself.n_examples == pruned.n_examples == 64


def test_transfer_in_both_directions(report):
    directions = {(r.source_name, r.model_name, r.recipe) for r in report.transfer}
    assert directions == {(s, t, recipe) for recipe in ("deepwordbug", "pwws")
                          for s, t in (("dense", "pruned-50"), ("pruned-50", "dense"))}
    for result in report.transfer:
        source_log = report.log(result.source_name, result.recipe)
        assert result.n_adversarial == len(source_log.successful())
        assert 0 <= result.n_eligible <= result.n_adversarial
        assert math.isnan(result.transfer_rate.value) or 0.0 <= result.transfer_rate.value <= 1.0


def test_report_files(report):
    from pathlib import Path

    out = Path(report.config.output_dir)
    for name in ("robustness_report.json", "robustness_report.md", "attack_log.csv", "robustness_audit.json",
                 "plots/accuracy_under_attack_vs_sparsity.png", "plots/label_loyalty_vs_sparsity.png"):
        assert (out / name).is_file(), name
    payload = json.loads((out / "robustness_report.json").read_text())
    assert payload["sample"]["fingerprint"] == report.sample.fingerprint()
    assert len(payload["robustness"]) == 4 and len(payload["loyalty"]) == 2
    with (out / "attack_log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * N_EXAMPLES
    assert {row["recipe"] for row in rows} == {"deepwordbug", "pwws"}
    markdown = (out / "robustness_report.md").read_text()
    assert "| dense | 0% | deepwordbug | 5 |" in markdown and "| pruned-50 |" in markdown
