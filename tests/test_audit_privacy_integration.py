"""Privacy audit end to end on real data: a small GPT-2 trained here with canaries (exposure), and membership
inference on MiniLM fine-tuned on an SST-2 member slice, dense and one-shot pruned."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

import hfprune
from hfprune.audit.privacy import (
    CanaryLMConfig,
    MemberFinetuneConfig,
    PrivacyAuditConfig,
    PrivacyReport,
    audit_model,
    finetune_on_members,
    load_run,
    reference_stats,
    train_canary_lm,
)

pytestmark = pytest.mark.integration

torch.set_num_threads(1)
PRUNING = hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude")


def test_gpt2_trained_here_exposes_a_repeated_canary_far_more_than_one_never_inserted(tmp_path):
    """Jane Austen paragraphs (400 members) with two canaries inserted 100 times each and two never inserted;
    secrets of 4 digits, so |R| = 10^4 is enumerated exactly and exposure is at most log2(10^4) = 13.3 bits."""
    config = CanaryLMConfig(
        dataset="jane_austen", n_members=400, n_nonmembers=200, max_length=48, vocab_size=1024, n_layer=2,
        n_embd=128, n_head=4, canary_repetitions=[0, 100], canaries_per_repetition=2, canary_digits=4, epochs=8.0,
        batch_size=16, learning_rate=2e-3, seed=0, threads=1, output_dir=str(tmp_path / "gpt2-austen"),
    )
    run = train_canary_lm(config)
    loaded = load_run(run.output_dir)
    audit = PrivacyAuditConfig(n_resamples=200)
    dense = audit_model(loaded.model, loaded.tokenizer, loaded.split, model_name="gpt2-offline", config=audit,
                        canaries=loaded.canaries)
    pruned_model = copy.deepcopy(loaded.model)
    hfprune.prune(pruned_model, PRUNING)
    pruned = audit_model(pruned_model, loaded.tokenizer, loaded.split, model_name="gpt2-offline pruned",
                         config=audit, canaries=loaded.canaries)
    report = PrivacyReport([dense, pruned], title="Privacy audit: offline GPT-2 on Jane Austen")
    written = report.save(tmp_path / "report", config=audit)
    print(report.to_markdown())  # the measured figures, for the test log

    never, repeated = (next(r for r in dense.exposure if r.repetitions == n) for n in (0, 100))
    assert never.method == "exact" and never.space_size == 10**4 and never.n_canaries == 2
    assert repeated.mean_exposure.value > 10.0  # near the 13.3-bit ceiling: the secret is memorised
    assert never.mean_exposure.value < 4.0  # a random secret: about 1.4 bits expected
    assert repeated.mean_exposure.value - never.mean_exposure.value > 7.0
    assert dense.gap.loss_gap > 0.0 and dense.gap.accuracy_kind == "next-token accuracy"
    assert [r.attack for r in dense.extraction] == ["perplexity", "zlib_ratio"]
    assert 0.0 < pruned.sparsity < 1.0 and dense.sparsity == 0.0
    assert math.isfinite(pruned.exposure[1].mean_exposure.value)
    assert {"plot_auc", "plot_tpr", "plot_exposure", "plot_roc"} <= set(written)
    saved = json.loads(written["json"].read_text())
    assert saved["entries"][0]["exposure"][1]["mean_exposure"]["value"] == pytest.approx(
        repeated.mean_exposure.value)


def test_membership_inference_on_minilm_dense_and_pruned(tmp_path):
    """MiniLM fine-tuned for 4 epochs on 256 SST-2 train sentences (members) vs 256 held-out train sentences; a
    reference model fine-tuned on 256 disjoint sentences calibrates the loss; a one-shot pruned copy (half the heads
    and FFN neurons, magnitude scores) is attacked with the same split and reference."""
    config = MemberFinetuneConfig(n_members=256, n_nonmembers=256, epochs=4.0, max_length=32, batch_size=16,
                                  learning_rate=1e-4, seed=0, threads=1, output_dir=str(tmp_path / "target"))
    run = finetune_on_members(config)
    reference_config = dataclasses.replace(config, seed=1, epochs=1.0, output_dir=str(tmp_path / "reference"))
    reference_run = finetune_on_members(reference_config, exclude=run.split)
    target = load_run(run.output_dir)
    assert target.split == run.split

    audit = PrivacyAuditConfig(batch_size=64, n_resamples=200)
    (reference,) = reference_stats([reference_run.output_dir], target.split, audit)
    dense = audit_model(target.model, target.tokenizer, target.split, model_name="minilm-sst2", config=audit,
                        reference=reference)
    pruned_model = copy.deepcopy(target.model)
    hfprune.prune(pruned_model, PRUNING)
    pruned = audit_model(pruned_model, target.tokenizer, target.split, model_name="minilm-sst2 pruned",
                         config=audit, reference=reference)
    report = PrivacyReport([dense, pruned], title="Privacy audit: MiniLM on an SST-2 member slice")
    written = report.save(tmp_path / "report", config=audit)
    print(report.to_markdown())

    attacks = ["loss", "confidence", "entropy", "reference"]
    assert [r.attack for r in dense.membership] == attacks and [r.attack for r in pruned.membership] == attacks
    assert dense.gap.train_accuracy > 0.95 and dense.gap.accuracy_gap > 0.05  # the dense model memorised
    assert dense.gap.loss_gap > 0.2
    dense_loss = dense.membership[0]
    assert dense_loss.auc.value > 0.6 and dense_loss.auc.low > 0.5  # ...and leaks membership
    assert 0.3 < pruned.sparsity < 0.7
    for result in pruned.membership:
        assert 0.0 <= result.auc.value <= 1.0 and result.n_members == 256
    markdown = written["markdown"].read_text()
    assert "train / held-out acc" in markdown and "minilm-sst2 pruned" in markdown
