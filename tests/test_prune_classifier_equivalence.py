"""``hfprune prune``'s pruning step against the same run written out with plain transformers pieces (issue 15).

The reference below is what ``hfprune prune`` did before it went through the pipeline's stages: a copy of the
teacher trained with ``DistillationTrainer`` and ``MovementPruningCallback`` on the ``train_skip`` slice of the
teacher's shuffle, AdamW weight decay 0.01, predictions of a ``Trainer`` on the whole validation split. The pruned
model must come out the same: equal masks, equal logits, equal per-example correctness.
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import minilm_tokenizer, tiny_bert

from hfprune.pipeline.prune_classifier import PruneClassifierConfig, prune_and_evaluate

SENTENCES = ["a gripping, funny and moving film", "dull and far too long", "not bad at all", "it is a mess"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A tiny BERT with MiniLM's tokenizer, dropout on (so the dropout RNG stream must match too)."""
    model = tiny_bert()
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.1
    path = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(path)
    minilm_tokenizer().save_pretrained(path)
    return path


def _config(teacher_dir, tmp_path, **overrides) -> PruneClassifierConfig:
    settings = dict(teacher=str(teacher_dir), train_samples=48, train_skip=16, prune_epochs=1.0, batch_size=16,
                    max_length=32, learning_rate=1e-3, seed=5, split_seed=3, threads=1, device="cpu",
                    output_dir=str(tmp_path / "run"))
    return PruneClassifierConfig(**{**settings, **overrides})


def _reference(config: PruneClassifierConfig, teacher_dir, scratch):
    """The pruning step as ``hfprune prune`` ran it at c77d7af, from transformers, datasets and the engine only."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

    from hfprune.data import load_dataset
    from hfprune.distill import DistillationArguments, DistillationTrainer
    from hfprune.pruning import MovementPruningCallback

    tokenizer = minilm_tokenizer()
    student = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    splits = load_dataset(config.dataset)
    train = splits["train"].filter(lambda row: row["label"] >= 0).shuffle(seed=config.split_seed)
    train = train.select(range(config.train_skip, config.train_skip + config.train_samples))

    def encode(rows):
        return tokenizer(rows["sentence"], truncation=True, max_length=config.max_length)

    train = train.map(encode, batched=True, remove_columns=["sentence", "idx"])
    evaluation = splits["validation"].map(encode, batched=True, remove_columns=["sentence", "idx"])
    args = DistillationArguments(
        output_dir=str(scratch), use_cpu=True, report_to="none", num_train_epochs=config.prune_epochs,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate, weight_decay=0.01,
        warmup_steps=0.1, eval_strategy="no", save_strategy="no", logging_steps=20, seed=config.seed,
        data_seed=config.seed, dataloader_num_workers=0, per_device_eval_batch_size=128,
        distill_alpha=config.distill_alpha if config.distill else 1.0, distill_temperature=config.distill_temperature,
        hidden_distill_weight=config.hidden_distill_weight if config.distill else 0.0,
    )
    common = dict(model=student, args=args, train_dataset=train, processing_class=tokenizer,
                  data_collator=DataCollatorWithPadding(tokenizer),
                  callbacks=[MovementPruningCallback(config.pruning_config())])
    trainer = (DistillationTrainer(teacher_model=copy.deepcopy(student), **common) if config.distill
               else Trainer(**common))
    trainer.train()
    prediction = trainer.predict(evaluation)
    correct = (prediction.predictions.argmax(-1) == prediction.label_ids).astype(int).tolist()
    return student.eval(), tokenizer, correct


@pytest.mark.parametrize("distill", [True, False])
def test_prune_step_equals_the_plain_transformers_run(teacher_dir, tmp_path, distill):
    from hfprune import load_pruned
    from hfprune.training import torch_threads

    config = _config(teacher_dir, tmp_path, distill=distill)
    with torch_threads(1):
        run = prune_and_evaluate(config, teacher_dir, tmp_path / "pruned")
        reference, tokenizer, correct = _reference(config, teacher_dir, tmp_path / "scratch")
    pruned = load_pruned(tmp_path / "pruned").eval()
    assert run.report["head_sparsity"] == 0.5 and run.report["ffn_sparsity"] == 0.5
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).logits
        assert torch.equal(pruned(**batch).logits, expected)
    weights, expected_weights = pruned.state_dict(), reference.state_dict()  # compacted at the end of training
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[name], expected_weights[name]) for name in weights)
    assert pruned.bert.encoder.layer[0].intermediate.dense.out_features < 48  # FFN neurons were removed
    assert run.correct == correct
    assert run.accuracy == sum(correct) / len(correct)
