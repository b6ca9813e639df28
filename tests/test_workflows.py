"""``prune_classifier``'s settings and data slices (fast: no training)."""

from __future__ import annotations

import pytest

from hfprune.data import load_dataset
from hfprune.errors import ConfigError
from hfprune.models import load_tokenizer
from hfprune.training import drop_unlabelled, tokenize_for_classification
from hfprune.workflows.prune_classifier import PruneClassifierConfig, _splits


def test_train_skip_must_be_a_non_negative_integer():
    with pytest.raises(ConfigError, match="train_skip"):
        PruneClassifierConfig(train_skip=-1)


def test_pruning_slice_after_train_skip_is_disjoint_from_the_teachers_slice():
    tokenizer = load_tokenizer()
    config = PruneClassifierConfig(train_samples=50, train_skip=200, seed=3)
    train, _ = _splits(config, tokenizer)
    teacher_order = drop_unlabelled(load_dataset("glue/sst2")["train"]).shuffle(seed=3)  # as finetune_classifier
    expected = tokenize_for_classification(teacher_order.select(range(200, 250)), tokenizer, max_length=64)
    assert train["input_ids"] == expected["input_ids"]
    teacher_ids = {tuple(ids) for ids in tokenize_for_classification(
        teacher_order.select(range(200)), tokenizer, max_length=64)["input_ids"]}
    assert not teacher_ids & {tuple(ids) for ids in train["input_ids"]}


def test_train_skip_beyond_the_split_names_the_field():
    config = PruneClassifierConfig(train_samples=10, train_skip=10_000_000)
    with pytest.raises(ConfigError, match="train_skip: expected fewer than the 67349"):
        _splits(config, load_tokenizer())


def test_split_seed_keeps_the_pruning_slice_while_seed_varies():
    # bench_accuracy --seeds: each seed prunes the same examples, still disjoint from the seed-3 teacher's
    tokenizer = load_tokenizer()
    fixed = _splits(PruneClassifierConfig(train_samples=50, train_skip=200, seed=3), tokenizer)[0]
    reseeded = _splits(PruneClassifierConfig(train_samples=50, train_skip=200, seed=7, split_seed=3), tokenizer)[0]
    other = _splits(PruneClassifierConfig(train_samples=50, train_skip=200, seed=7), tokenizer)[0]
    assert reseeded["input_ids"] == fixed["input_ids"]
    assert other["input_ids"] != fixed["input_ids"]
    with pytest.raises(ConfigError, match="split_seed"):
        PruneClassifierConfig(split_seed=-1)
