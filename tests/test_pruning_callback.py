"""MovementPruningCallback inside real Trainer runs: schedule, compaction, resume, gradient accumulation, DDP."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model
from pruning_trainer_utils import StopAt, pruning_callback, run_two_processes, synthetic_classification, training_args
from transformers import Trainer

from hfprune import MovementPruningCallback, PruningConfig, load_pruned
from hfprune.pruning.units import UnitKind, unit_groups


def test_callback_prunes_on_schedule_and_compacts(tmp_path, tiny_inputs):
    model = tiny_model("bert")
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2)
    trainer = Trainer(model=model, args=training_args(tmp_path), train_dataset=synthetic_classification(),
                      callbacks=[MovementPruningCallback(config)])
    trainer.train()
    report = pruning_callback(trainer).report
    assert (report.heads_kept, report.neurons_kept) == (4, 48)
    assert [g.num_units for g in unit_groups(model, UnitKind.HEADS)] == [len(k) for k in
                                                                         model.config.hfprune_structure["kept_heads"]]
    assert sum(p.numel() for p in model.parameters()) == report.params
    model.eval()
    model.save_pretrained(tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(load_pruned(tmp_path / "out")(**tiny_inputs).logits, model(**tiny_inputs).logits)


def _run(output_dir, resume=None, stop_at=None, scoring="movement", arch="bert", head_granularity="group"):
    model = tiny_model(arch, seed=0)
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=3, compact_on_train_end=False,
                           scoring=scoring, head_granularity=head_granularity)
    callbacks = [MovementPruningCallback(config)] + ([StopAt(stop_at)] if stop_at else [])
    args = training_args(output_dir, max_steps=24, save_strategy="steps", save_steps=5)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return pruning_callback(trainer).pruner


@pytest.mark.parametrize("scoring,arch,granularity", [  # a running sum, and one that decays
    ("movement", "bert", "group"), ("snip_momentum", "bert", "group"), ("movement", "qwen2", "query"),
])
def test_resumed_run_ends_with_the_same_masks(tmp_path, scoring, arch, granularity):
    kwargs = dict(scoring=scoring, arch=arch, head_granularity=granularity)
    uninterrupted = _run(tmp_path / "a", **kwargs)
    _run(tmp_path / "b", stop_at=13, **kwargs)  # killed after step 13; last checkpoint is step 10
    resumed = _run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-10"), **kwargs)
    for kind in (UnitKind.HEADS, UnitKind.NEURONS):
        for expected, got in zip(uninterrupted.masks[kind], resumed.masks[kind], strict=True):
            assert torch.equal(expected, got)
        for expected, got in zip(uninterrupted.scores[kind], resumed.scores[kind], strict=True):
            assert torch.allclose(expected, got, rtol=1e-5, atol=1e-7)
    heads = resumed.masks[UnitKind.HEADS]
    assert 0 < sum(int(m.sum()) for m in heads) < sum(m.numel() for m in heads)


def _scores_after_two_steps(tmp_path, batch, accumulation, model_normalises_loss):
    model = tiny_model("bert", seed=0)
    if not model_normalises_loss:
        model.accepts_loss_kwargs = False  # the Trainer then divides each micro-batch loss by the accumulation
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, compact_on_train_end=False)
    args = training_args(tmp_path / f"ga{accumulation}{model_normalises_loss}", per_device_train_batch_size=batch,
                         gradient_accumulation_steps=accumulation, max_steps=2, learning_rate=0.0)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(),
                      callbacks=[MovementPruningCallback(config)])
    trainer.train()
    return pruning_callback(trainer).pruner.scores


def test_scores_are_the_same_with_gradient_accumulation(tmp_path):
    """Scores are taken once per optimizer step from the accumulated gradient, so batch 4 equals 2 x batch 2."""
    full = _scores_after_two_steps(tmp_path, 4, 1, model_normalises_loss=False)
    accumulated = _scores_after_two_steps(tmp_path, 2, 2, model_normalises_loss=False)
    for kind in full:
        for a, b in zip(full[kind], accumulated[kind], strict=True):
            assert a.abs().sum() > 0
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-8)


def test_gradient_accumulation_with_unnormalised_model_loss_keeps_the_ranking(tmp_path):
    """BERT's classification head declares **kwargs but ignores num_items_in_batch, so transformers 5's Trainer
    neither divides by the accumulation steps nor normalises (transformers#47688): its gradients, and so the
    movement scores, are scaled by a constant. Scores stay proportional, so masks are unchanged."""
    full = _scores_after_two_steps(tmp_path, 4, 1, model_normalises_loss=True)
    accumulated = _scores_after_two_steps(tmp_path, 2, 2, model_normalises_loss=True)
    for kind in full:
        for a, b in zip(full[kind], accumulated[kind], strict=True):
            assert torch.allclose(2 * a, b, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("arch,port,heads_kept", [("bert", 29517, 4), ("mistral", 29518, 4)])
def test_two_process_gloo_run_has_identical_masks_on_both_ranks(tmp_path, arch, port, heads_kept):
    ranks = run_two_processes("ddp_pruning_worker.py", tmp_path, port, arch)
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["masks"] == ranks[1]["masks"]
    # half of 2 layers x 4 heads (mistral: 4 key/value groups of 4 query heads each)
    assert sum(sum(layer) for layer in ranks[0]["masks"]["heads"]) == heads_kept


def test_bf16_mixed_precision_run_scores_in_float32_and_compacts(tmp_path):
    model = tiny_model("bert")
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2)
    trainer = Trainer(model=model, args=training_args(tmp_path, bf16=True, max_steps=10),
                      train_dataset=synthetic_classification(), callbacks=[MovementPruningCallback(config)])
    trainer.train()
    pruner = pruning_callback(trainer).pruner
    assert all(s.dtype == torch.float32 and torch.isfinite(s).all() and s.abs().sum() > 0
               for scores in pruner.scores.values() for s in scores)
    assert pruner.scored_steps == 10
    assert sum(g.num_units for g in unit_groups(model, UnitKind.HEADS)) == 4
