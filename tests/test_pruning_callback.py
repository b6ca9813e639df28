"""MovementPruningCallback inside real Trainer runs: schedule, compaction, resume, gradient accumulation, DDP."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model
from pruning_trainer_utils import StopAt, pruning_callback, run_two_processes, synthetic_classification, training_args
from transformers import Trainer, TrainerCallback

from hfprune import MovementPruningCallback, PruningConfig, load_pruned
from hfprune.pruning.checkpoints import load_checkpoint_masked
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


@pytest.mark.parametrize("scoring", ["soft_movement", "movement"])
def test_a_run_that_ends_below_its_targets_says_so_with_the_numbers(tmp_path, caplog, scoring):
    """soft_movement's threshold decides what goes and the targets only cap it: with a weak penalty it stops short
    of 50%, and the user is told how far and which settings remove more; top-k movement reaches its targets."""
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring=scoring, regularization=0.01,
                           threshold=0.05, compact_on_train_end=False)
    trainer = Trainer(model=tiny_model("bert", seed=0), args=training_args(tmp_path, max_steps=8),
                      train_dataset=synthetic_classification(), callbacks=[MovementPruningCallback(config)])
    with caplog.at_level("WARNING", logger="hfprune"):
        trainer.train()
    masks = pruning_callback(trainer).pruner.masks
    achieved = {kind: 1 - sum(float(m.sum()) for m in masks[kind]) / sum(m.numel() for m in masks[kind])
                for kind in UnitKind}
    warnings = [r.getMessage() for r in caplog.records if "ended below its targets" in r.getMessage()]
    if scoring == "movement":
        assert achieved == {UnitKind.HEADS: 0.5, UnitKind.NEURONS: 0.5} and warnings == []
        return
    assert achieved[UnitKind.HEADS] < 0.5 and achieved[UnitKind.NEURONS] < 0.5 and len(warnings) == 1
    for kind in UnitKind:
        assert f"'{kind.value}': ({round(achieved[kind], 4)}, 0.5)" in warnings[0]
    assert "regularization (now 0.01)" in warnings[0] and "threshold (now 0.05)" in warnings[0]


def _run(output_dir, resume=None, stop_at=None, scoring="movement", arch="bert", head_granularity="group"):
    model = tiny_model(arch, seed=0)
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=3, compact_on_train_end=False,
                           scoring=scoring, regularization=0.1, head_granularity=head_granularity)
    callbacks = [MovementPruningCallback(config)] + ([StopAt(stop_at)] if stop_at else [])
    args = training_args(output_dir, max_steps=24, save_strategy="steps", save_steps=5)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return pruning_callback(trainer).pruner


# a running sum, one that decays, the straight-through one and soft movement's regularised, thresholded scores;
# and grouped-query attention pruned by query head
@pytest.mark.parametrize("scoring,arch,granularity", [
    ("movement", "bert", "group"), ("snip_momentum", "bert", "group"), ("movement_ste", "bert", "group"),
    ("soft_movement", "bert", "group"), ("movement", "qwen2", "query"),
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


@pytest.mark.parametrize("checkpoint", [5, 15])
def test_resume_from_an_earlier_checkpoint_ends_with_the_same_masks(tmp_path, checkpoint):
    """A finished run leaves checkpoints 5..20; resuming from an early one starts from that step's own masks and
    scores (not the last checkpoint's nor the final ones), so it ends where the uninterrupted run ended."""
    uninterrupted = _run(tmp_path / "a")
    resumed = _run(tmp_path / "a", resume=str(tmp_path / "a" / f"checkpoint-{checkpoint}"))
    for kind in (UnitKind.HEADS, UnitKind.NEURONS):
        for expected, got in zip(uninterrupted.masks[kind], resumed.masks[kind], strict=True):
            assert torch.equal(expected, got)
        for expected, got in zip(uninterrupted.scores[kind], resumed.scores[kind], strict=True):
            assert torch.allclose(expected, got, rtol=1e-5, atol=1e-7)


class _MaskedLogitsAtSave(TrainerCallback):
    """The model's masked logits on a fixed batch whenever a checkpoint is saved (after the pruning callback's
    mask update of that step), and each step's masks."""

    def __init__(self, pruning: MovementPruningCallback, inputs: dict) -> None:
        self.pruning, self.inputs = pruning, inputs
        self.logits, self.masks = {}, {}

    def on_save(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            self.logits[state.global_step] = model(**self.inputs).logits.clone()
        self.masks[state.global_step] = [m.clone() for m in self.pruning.pruner.masks[UnitKind.HEADS]]


@pytest.mark.parametrize("scoring", ["movement", "soft_movement"])
def test_load_best_model_at_end_is_the_best_checkpoints_masked_model_compacted(tmp_path, tiny_inputs, scoring):
    """Evaluation every 2 steps with a metric that is best at the first one (step 2): the final model is step 2's
    weights with step 2's masks, compacted -- not step 2's weights with the last step's masks."""
    calls = []

    def first_is_best(prediction):
        calls.append(1)
        return {"score": -len(calls)}

    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, warmup_ratio=0.0, mask_update_interval=1,
                           scoring=scoring)
    pruning = MovementPruningCallback(config)
    recorder = _MaskedLogitsAtSave(pruning, tiny_inputs)
    model = tiny_model("bert", seed=0)
    args = training_args(tmp_path, max_steps=10, eval_strategy="steps", eval_steps=2, save_strategy="steps",
                         save_steps=2, load_best_model_at_end=True, metric_for_best_model="score",
                         greater_is_better=True, per_device_eval_batch_size=16)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(),
                      eval_dataset=synthetic_classification(n=16, seed=1), compute_metrics=first_is_best,
                      callbacks=[pruning, recorder])
    trainer.train()
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-2")
    kept = [int(m.sum()) for m in recorder.masks[2]]
    assert kept != [int(m.sum()) for m in recorder.masks[10]]  # step 2's masks differ from the final ones
    assert [g.num_units for g in unit_groups(model, UnitKind.HEADS)] == kept  # compacted to step 2's structure
    model.eval()
    with torch.no_grad():
        final = model(**tiny_inputs).logits
    assert (final - recorder.logits[2]).abs().max() < 1e-5
    assert not torch.allclose(final, recorder.logits[10], atol=1e-3)
    # the checkpoint folder alone gives the same model
    reopened = load_checkpoint_masked(tmp_path / "checkpoint-2")
    with torch.no_grad():
        assert torch.equal(reopened(**tiny_inputs).logits, final)


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


# the first case also removes one of the 2 layers (block influence measured on each rank's batches, averaged)
@pytest.mark.parametrize(("scoring", "arch", "layer_sparsity"), [
    ("movement", "bert", "0.5"), ("movement_ste", "bert", "0"), ("soft_movement", "bert", "0"),
    ("movement", "mistral", "0"),
])
def test_two_process_gloo_run_has_identical_masks_on_both_ranks(tmp_path, scoring, arch, layer_sparsity):
    ranks = run_two_processes("ddp_pruning_worker.py", tmp_path, args=(scoring, arch, layer_sparsity))
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["masks"] == ranks[1]["masks"]
    assert ranks[0]["layers"] == ranks[1]["layers"] if layer_sparsity == "0" else (
        ranks[0]["layers"]["mask"] == ranks[1]["layers"]["mask"] and sum(ranks[0]["layers"]["mask"]) == 1)
    assert ranks[0]["scores"] == ranks[1]["scores"]  # scores come from DDP-averaged gradients: equal to the bit
    # half of 2 layers x 4 heads (mistral: 4 key/value groups of 4 query heads each)
    heads_kept = sum(sum(layer) for layer in ranks[0]["masks"]["heads"])
    # soft movement removes the heads under its threshold, at most the target's 4 of 8
    assert 4 <= heads_kept < 8 if scoring == "soft_movement" else heads_kept == 4


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


class _UnitHistory(TrainerCallback):
    """After every optimizer step: masks, scores and the weights (producer rows and consumer columns) of every
    FFN neuron, read from the pruning callback placed before this one."""

    def __init__(self, pruning: MovementPruningCallback) -> None:
        self.pruning = pruning
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        pruner = self.pruning.pruner
        weights = [torch.cat([values.reshape(values.shape[0], -1) for values, _ in group.views()], 1).clone()
                   for group in pruner.groups[UnitKind.NEURONS]]
        self.steps.append((torch.cat(pruner.masks[UnitKind.NEURONS]), torch.cat(pruner.scores[UnitKind.NEURONS]),
                           torch.cat(weights)))


def _revivals(tmp_path, scoring):
    """Plain SGD (no momentum), so a unit's weights move only when they get a gradient. Returns the history and,
    for every pruned -> kept flip, whether the unit's weights at revival equal those it had when pruned."""
    config = PruningConfig(ffn_sparsity=0.5, mask_update_interval=2, compact_on_train_end=False, scoring=scoring)
    pruning = MovementPruningCallback(config)
    history = _UnitHistory(pruning)
    trainer = Trainer(model=tiny_model("bert", seed=0), train_dataset=synthetic_classification(),
                      args=training_args(tmp_path / scoring, max_steps=40, optim="sgd", learning_rate=0.05),
                      callbacks=[pruning, history])
    trainer.train()
    stale, pruned_weights = [], {}
    for masks, _, weights in history.steps:
        for unit in range(masks.numel()):
            if masks[unit] == 0 and unit not in pruned_weights:
                pruned_weights[unit] = weights[unit]
            elif masks[unit] == 1 and unit in pruned_weights:
                stale.append(torch.equal(pruned_weights.pop(unit), weights[unit]))
    return history.steps, stale


def test_straight_through_scores_and_weights_of_masked_units_keep_moving(tmp_path):
    """The revival policy: masks are re-chosen at each update, and with the estimator a masked unit's score and
    weights keep learning, so a unit that comes back is up to date. Without it (``movement``) masked scores freeze
    and a revived unit comes back with the weights it had when pruned."""
    steps, stale = _revivals(tmp_path, "movement_ste")
    masked_steps = [(before[1] != after[1])[before[0] == 0] for before, after in zip(steps, steps[1:], strict=False)]
    assert sum(m.numel() for m in masked_steps) > 100
    assert all(bool(m.all()) for m in masked_steps)  # every masked unit's score moved at every step
    assert len(stale) > 0 and not any(stale)  # units came back, none with the weights it had when pruned
    steps, stale = _revivals(tmp_path, "movement")
    assert not any(bool((before[1] != after[1])[before[0] == 0].any())
                   for before, after in zip(steps, steps[1:], strict=False))
    assert len(stale) > 0 and all(stale)
