"""``prune_classifier``'s settings and data slices (fast: no training)."""

from __future__ import annotations

import pytest

from hfprune.data import load_dataset
from hfprune.errors import ConfigError
from hfprune.models import load_tokenizer
from hfprune.pipeline.prune_classifier import PruneClassifierConfig, pruning_examples
from hfprune.training import drop_unlabelled, tokenize_for_classification


def test_train_skip_must_be_a_non_negative_integer():
    with pytest.raises(ConfigError, match="train_skip"):
        PruneClassifierConfig(train_skip=-1)


def test_pruning_slice_after_train_skip_is_disjoint_from_the_teachers_slice():
    tokenizer = load_tokenizer()
    config = PruneClassifierConfig(train_samples=50, train_skip=200, seed=3)
    train = pruning_examples(config, tokenizer)
    teacher_order = drop_unlabelled(load_dataset("glue/sst2")["train"]).shuffle(seed=3)  # as finetune_classifier
    expected = tokenize_for_classification(teacher_order.select(range(200, 250)), tokenizer, max_length=64)
    assert train["input_ids"] == expected["input_ids"]
    teacher_ids = {tuple(ids) for ids in tokenize_for_classification(
        teacher_order.select(range(200)), tokenizer, max_length=64)["input_ids"]}
    assert not teacher_ids & {tuple(ids) for ids in train["input_ids"]}


def test_train_skip_beyond_the_split_names_the_field():
    config = PruneClassifierConfig(train_samples=10, train_skip=10_000_000)
    with pytest.raises(ConfigError, match="train_skip: expected fewer than the 67349"):
        pruning_examples(config, load_tokenizer())


def test_prune_report_names_the_given_teacher_and_times_no_fine_tuning(tmp_path, monkeypatch):
    """With --teacher nothing is fine-tuned: the report is titled by that teacher and times its evaluation."""
    from hfprune.pipeline import prune_classifier as module

    teacher = tmp_path / "my-teacher"
    config = PruneClassifierConfig(teacher=str(teacher), output_dir=str(tmp_path / "out"))
    sparsity = {"head_sparsity": 0.5, "ffn_sparsity": 0.5, "seq_len": 64, "params_dense": 100, "flops_dense": 1000,
                "params": 60, "flops": 500}
    monkeypatch.setattr(module, "_dense_teacher", lambda config, out: (teacher, 0.875))
    monkeypatch.setattr(module, "prune_and_save", lambda config, dense_dir, target: (0.75, sparsity))
    result = module._prune_classifier(config, tmp_path / "out")
    assert list(result.seconds) == ["dense evaluation", "pruning"]
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert markdown.startswith(f"# hfprune: {teacher} on {config.dataset}\n")
    assert "| dense | 0.8750 | 100 | 1,000 |" in markdown and "| pruned | 0.7500 | 60 | 500 |" in markdown


def test_split_seed_keeps_the_pruning_slice_while_seed_varies():
    # bench_accuracy --seeds: each seed prunes the same examples, still disjoint from the seed-3 teacher's
    tokenizer = load_tokenizer()
    fixed = pruning_examples(PruneClassifierConfig(train_samples=50, train_skip=200, seed=3), tokenizer)
    reseeded = pruning_examples(PruneClassifierConfig(train_samples=50, train_skip=200, seed=7, split_seed=3),
                                tokenizer)
    other = pruning_examples(PruneClassifierConfig(train_samples=50, train_skip=200, seed=7), tokenizer)
    assert reseeded["input_ids"] == fixed["input_ids"]
    assert other["input_ids"] != fixed["input_ids"]
    with pytest.raises(ConfigError, match="split_seed"):
        PruneClassifierConfig(split_seed=-1)
