"""Weight-level pruning: exact sparsity, 2:4 patterns, movement scores, compressed saves, combined Trainer runs,
resume and two-process agreement, on tiny random models."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_ARCHS, TINY_DECODERS, TINY_GQA, tiny_model
from pruning_trainer_utils import StopAt, pruning_callback, run_two_processes, synthetic_classification, training_args
from safetensors import safe_open
from transformers import Trainer, TrainerCallback

from hfprune import MovementPruningCallback
from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning import (
    WEIGHT_METHODS,
    PruningConfig,
    StructuredPruner,
    WeightPruner,
    load_compressed,
    prune,
    register_weight_method,
    save_compressed,
    sparsity_report,
)
from hfprune.pruning.masks import select_masks
from hfprune.pruning.units import UnitKind
from hfprune.pruning.weight.encoding import decode_floats, decode_mask, encode_floats, encode_mask
from hfprune.pruning.weight.matrices import prunable_matrices

CASES = ([(arch, "classification") for arch in TINY_ARCHS] + [("gpt2", "causal_lm")]
         + [(arch, "causal_lm") for arch in TINY_DECODERS])


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def random_grads(model, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.grad = torch.randn(param.shape, generator=generator)


def pruned_per_matrix(model) -> list[tuple[int, int]]:
    """(zeros, size) of every prunable matrix of a model whose pruned weights were zeroed."""
    return [(int((m.weight == 0).sum()), m.weight.numel()) for m in prunable_matrices(model)]


# -- sparsity and patterns ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["magnitude", "movement", "soft_movement"])
@pytest.mark.parametrize("sparsity", [0.3, 0.77])
def test_weight_sparsity_is_the_target_within_one_weight_per_matrix(arch, method, sparsity):
    model = tiny_model(arch)
    pruner = WeightPruner(model, sparsity, method)
    random_grads(model)
    pruner.accumulate_scores()
    pruner.update_masks(sparsity)
    for name, (pruned, total) in pruner.matrix_sparsity().items():
        assert abs(pruned - sparsity * total) <= 1, name
    kept, total = pruner.counts()
    assert total == 2 * (4 * 32 * 32 + 2 * 32 * 48)  # 2 layers: Q, K, V, O (32x32) and FFN in/out (32x48)
    assert sparsity_report(model).weights_kept == kept
    pruner.apply()
    for zeros, size in pruned_per_matrix(model):
        assert abs(zeros - sparsity * size) <= 1


def test_global_allocation_ranks_all_matrices_together():
    model = tiny_model("bert")
    with torch.no_grad():
        model.bert.encoder.layer[0].intermediate.dense.weight.mul_(100)  # far larger: global magnitude keeps it
    pruner = WeightPruner(model, 0.5, "magnitude", allocation="global")
    pruner.update_masks(0.5)
    per_matrix = pruner.matrix_sparsity()
    scaled = per_matrix.pop("bert.encoder.layer.0.intermediate.dense")
    assert scaled[0] < 0.01 * scaled[1]  # only its weights within ~0.01 of zero go (8 of 1536 with this seed)
    assert all(pruned > 0.5 * total for pruned, total in per_matrix.values())
    per_matrix["scaled"] = scaled
    assert sum(p for p, _ in per_matrix.values()) == round(0.5 * sum(t for _, t in per_matrix.values()))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["2:4", "2:4_movement"])
def test_two_four_masks_keep_exactly_two_of_every_four_inputs(arch, method):
    model = tiny_model(arch)
    pruner = WeightPruner(model, 0.5, method)
    random_grads(model)
    pruner.accumulate_scores()
    pruner.update_masks(0.25)  # halfway up the ramp: half of the groups are 2:4, the rest dense
    for pruned, total in pruner.matrix_sparsity().values():
        assert abs(pruned - 0.25 * total) <= 1
    for matrix, mask in zip(pruner.matrices, pruner.masks, strict=True):
        counts = matrix.out_in(mask).reshape(-1, 4).sum(-1)
        assert set(counts.tolist()) <= {2, 4}
    pruner.update_masks(0.5)
    pruner.apply()
    for matrix in pruner.matrices:
        groups = matrix.out_in(matrix.weight).reshape(matrix.out_in(matrix.weight).shape[0], -1, 4)
        assert torch.equal((groups != 0).sum(-1), torch.full(groups.shape[:2], 2))


def test_two_four_magnitude_keeps_the_two_largest():
    model = tiny_model("bert")
    pruner = WeightPruner(model, 0.5, "2:4")
    pruner.update_masks(0.5)
    matrix, mask = pruner.matrices[0], pruner.masks[0]
    groups = matrix.weight.detach().abs().reshape(-1, 4)
    expected = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, groups.topk(2, dim=1).indices, True)
    assert torch.equal(mask.reshape(-1, 4), expected)


# -- movement scores ---------------------------------------------------------------------------------------------
def test_soft_movement_scores_move_as_the_gradient_says():
    """Weights pushed away from zero (sign(dL/dW) = -sign(W)) gain score, weights pulled toward zero lose it, by
    exactly -W * dL/dW per step; a pruned weight keeps scoring and returns once its score crosses the threshold."""
    model = tiny_model("bert")
    pruner = WeightPruner(model, 0.5, "soft_movement")
    query = model.bert.encoder.layer[0].attention.self.query
    weight = query.weight.detach().clone()
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    away = torch.zeros_like(weight, dtype=torch.bool)
    away[:16] = True  # first 16 output rows move away from zero, the rest toward it
    grad = torch.where(away, -weight.sign(), weight.sign()) * 0.1
    query.weight.grad.copy_(grad)
    pruner.accumulate_scores()
    scores = pruner.scores[0]
    assert torch.equal(scores, -(weight * grad))
    assert bool((scores[away] > 0).all()) and bool((scores[~away] < 0).all())
    pruner.update_masks(0.5)
    assert torch.equal(pruner.masks[0], away)  # exactly the rows moving away from zero are kept

    # a pruned weight whose gradient now pushes it away from zero climbs back over the threshold
    revived = (20, 3)
    for _ in range(3):
        query.weight.grad.zero_()
        query.weight.grad[revived] = -weight[revived].sign() * 1.0
        pruner.accumulate_scores()
        pruner.refresh()
    assert bool(pruner.masks[0][revived])
    assert pruner.scores[0][revived] == pytest.approx(float(-(weight[revived] * grad[revived])) +
                                                      3 * float(weight[revived].abs()), rel=1e-6)


def test_masked_forward_passes_the_straight_through_gradient(tiny_inputs):
    """weight.grad holds dL/dW' of the masked weight W' = W * M at every position, pruned ones included; the
    pruner then zeroes the pruned positions so the optimizer leaves them alone."""
    model = tiny_model("bert")
    labels = torch.tensor([0, 1, 1])
    pruner = WeightPruner(model, 0.5, "magnitude")
    pruner.update_masks(0.5)
    query = model.bert.encoder.layer[1].attention.self.query
    mask = pruner.masks[pruner.matrices.index(next(m for m in pruner.matrices if m.module is query))]

    reference = tiny_model("bert")
    name = "bert.encoder.layer.1.attention.self.query.weight"
    masked = {m.name + ".weight": m.weight.detach() * k for m, k in zip(prunable_matrices(reference), pruner.masks,
                                                                       strict=True)}
    masked[name].requires_grad_(True)
    params = {**dict(reference.named_parameters()), **masked}
    loss = torch.func.functional_call(reference, params, kwargs={**tiny_inputs, "labels": labels}).loss
    expected = torch.autograd.grad(loss, masked[name])[0]

    model(**tiny_inputs, labels=labels).loss.backward()
    assert torch.allclose(query.weight.grad, expected, rtol=1e-5, atol=1e-8)
    assert bool((query.weight.grad[~mask] != 0).any())
    pruner.mask_gradients()
    assert bool((query.weight.grad[~mask] == 0).all())


def test_non_finite_gradients_are_skipped_and_scores_stay_zero():
    model = tiny_model("bert")
    random_grads(model)
    model.bert.encoder.layer[0].output.dense.weight.grad[0, 0] = float("nan")
    pruner = StructuredPruner(model, PruningConfig(weight_sparsity=0.5))
    assert pruner.accumulate_scores() is False
    assert all(torch.count_nonzero(s) == 0 for s in pruner.weights.scores)


# -- combined pruning and compaction -----------------------------------------------------------------------------
@pytest.mark.parametrize("arch,task", CASES)
def test_compaction_slices_weight_masks_and_keeps_the_logits(arch, task, tiny_inputs):
    model = tiny_model(arch, task)
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.4, scoring="random", weight_sparsity=0.6,
                           weight_method="magnitude", seed=1)
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    masked = logits(model, tiny_inputs)
    before = sparsity_report(model)
    pruner.compact(apply_weights=False)  # heads / neurons sliced out, weight masks sliced along and still active
    assert (logits(model, tiny_inputs) - masked).abs().max() < 1e-5
    after = sparsity_report(model)
    assert (after.weights_kept, after.weights_total) == (before.weights_kept, before.weights_total)
    # weights in play: per layer 2 heads x 8 dims of Q, K, V rows and O columns, and 29 of 48 FFN neurons; for the
    # decoders 2 of 4 key/value groups (their query heads and k/v head: q, k, v rows and o columns), and 29 neurons
    # in gate, up and down
    heads, kv_heads, head_dim, hidden = TINY_GQA.get(arch, (4, 4, 8, 32))
    attention = 2 * head_dim * hidden * (2 * heads // kv_heads + 2)
    assert before.weights_total == 2 * (attention + (3 if arch in TINY_GQA else 2) * 29 * hidden)
    assert before.weight_sparsity == pytest.approx(0.6, abs=1e-3)
    pruner.weights.apply()
    assert (logits(model, tiny_inputs) - masked).abs().max() < 1e-5
    for zeros, size in pruned_per_matrix(model):
        assert abs(zeros - 0.6 * size) <= 1


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_two_four_after_ffn_pruning_keeps_neurons_in_fours_and_is_exactly_half(arch):
    """Without rounding, 29 of 96 neurons removed leave FFN-out inputs that are not a multiple of 4, whose short
    trailing 2:4 group cannot lose half its weights (issue #10 reports 0.494 instead of 0.5 on MiniLM): each layer
    now keeps its neurons in multiples of 4 (the best-scoring removed ones kept back), so the pattern is exact."""
    model = tiny_model(arch)
    config = PruningConfig(ffn_sparsity=0.3, scoring="magnitude", weight_sparsity=0.5, weight_method="2:4")
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    kept = [int(m.sum()) for m in pruner.masks[UnitKind.NEURONS]]
    assert all(k % 4 == 0 for k in kept) and sum(kept) >= 96 - round(0.3 * 96)
    assert sum(kept) - (96 - round(0.3 * 96)) < 2 * 4  # at most 3 neurons per layer kept back
    scores = [pruner.scorer.score(g, state) for g, state in zip(pruner.groups[UnitKind.NEURONS],
                                                                pruner.scores[UnitKind.NEURONS], strict=True)]
    unrounded = select_masks(scores, 0.3, "global", 1)
    assert any(int(m.sum()) % 4 for m in unrounded)  # the case the rounding is for
    for mask, rounded in zip(unrounded, pruner.masks[UnitKind.NEURONS], strict=True):
        assert bool((rounded >= mask).all())  # only ever keeps more
    report = sparsity_report(model)
    assert report.weight_sparsity == 0.5
    pruner.compact()
    for matrix in prunable_matrices(model):
        weight = matrix.out_in(matrix.weight.detach())
        assert weight.shape[1] % 4 == 0
        assert torch.equal((weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1),
                           torch.full((weight.shape[0], weight.shape[1] // 4), 2))


def test_one_shot_weight_pruning_needs_no_data_for_magnitude():
    model = tiny_model("bert")
    dense = sparsity_report(model)
    prune(model, PruningConfig(weight_sparsity=0.75, weight_method="magnitude"))
    report = sparsity_report(model)
    assert report.params == dense.params  # zeros do not remove parameters...
    assert report.weights_total - report.weights_kept == 0.75 * report.weights_total  # ...but 3/4 are zero
    assert report.nonzero_params == dense.params - 0.75 * report.weights_total
    with pytest.raises(HfpruneError, match="calibration dataloader"):
        prune(tiny_model("bert"), PruningConfig(weight_sparsity=0.5, weight_method="movement"))


# -- compressed save ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,task", CASES)
def test_compressed_save_reloads_to_identical_logits(arch, task, tiny_inputs, tmp_path):
    model = tiny_model(arch, task)
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=0.25, scoring="random", weight_sparsity=0.9,
                                                   weight_method="magnitude"))
    pruner.update_masks(step=1, total_steps=1)
    pruner.compact(apply_weights=False)
    expected = logits(model, tiny_inputs)
    save_compressed(model, tmp_path / "sparse")  # writes the masked weights; the model is not changed
    reloaded = load_compressed(tmp_path / "sparse")
    assert torch.equal(logits(reloaded, tiny_inputs), expected)

    with safe_open(str(tmp_path / "sparse" / "model.safetensors"), framework="pt") as handle:
        stored = {key: handle.get_tensor(key) for key in handle.keys()}
        compressed = json.loads(handle.metadata()["compressed"])
    matrices = prunable_matrices(model)
    assert compressed == [m.name + ".weight" for m in matrices]
    for matrix in matrices:
        key = matrix.name + ".weight"
        nonzero = int(torch.count_nonzero(matrix.weight * pruner.weights.masks[matrices.index(matrix)]))
        assert stored[key + ".values"].numel() == nonzero
        assert stored[key + ".bitmask"].numel() == -(-matrix.weight.numel() // 8)
    model.save_pretrained(tmp_path / "dense")
    sparse_bytes = (tmp_path / "sparse" / "model.safetensors").stat().st_size
    dense_bytes = (tmp_path / "dense" / "model.safetensors").stat().st_size
    saved = sum(4 * m.weight.numel() for m in matrices) - sum(
        4 * stored[m.name + ".weight.values"].numel() + stored[m.name + ".weight.bitmask"].numel() for m in matrices)
    assert dense_bytes - sparse_bytes == pytest.approx(saved, abs=4096)  # differences in headers only


def test_load_compressed_rejects_an_ordinary_checkpoint(tmp_path):
    tiny_model("bert").save_pretrained(tmp_path / "dense")
    with pytest.raises(HfpruneError, match="not written by save_compressed"):
        load_compressed(tmp_path / "dense")


def test_save_compressed_refuses_masked_units(tmp_path):
    model = tiny_model("bert")
    StructuredPruner(model, PruningConfig(head_sparsity=0.5, scoring="random")).update_masks(1, 1)
    with pytest.raises(HfpruneError, match="compact the model first"):
        save_compressed(model, tmp_path / "out")


# -- state -------------------------------------------------------------------------------------------------------
def test_mask_and_score_encodings_are_exact():
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(7, 13, generator=generator) > 0.5
    scores = torch.randn(7, 13, generator=generator) * 1e-7
    assert torch.equal(decode_mask(encode_mask(mask), [7, 13]), mask)
    assert torch.equal(decode_floats(encode_floats(scores), [7, 13]), scores)
    assert len(encode_mask(mask)) == 4 * -(-12 // 3)  # 91 bits -> 12 bytes -> 16 base64 characters


def test_state_dict_round_trips_through_json():
    model = tiny_model("gpt2")
    config = PruningConfig(ffn_sparsity=0.5, weight_sparsity=0.6, weight_method="soft_movement")
    pruner = StructuredPruner(model, config)
    random_grads(model)
    pruner.accumulate_scores()
    pruner.update_masks(step=5, total_steps=10)
    state = json.loads(json.dumps(pruner.state_dict()))
    restored = StructuredPruner(tiny_model("gpt2"), config)
    restored.load_state_dict(state)
    for a, b in zip(pruner.weights.masks + pruner.weights.scores, restored.weights.masks + restored.weights.scores,
                    strict=True):
        assert torch.equal(a, b)
    assert restored.weights.method.thresholds == pruner.weights.method.thresholds
    assert restored.weights.counts() == pruner.weights.counts()
    with pytest.raises(HfpruneError, match="no weight masks"):
        restored.load_state_dict({**state, "weights": None})


# -- config ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,field", [
    ({"weight_sparsity": 1.0}, "weight_sparsity"), ({"weight_sparsity": -0.1}, "weight_sparsity"),
    ({"weight_sparsity": "0.5"}, "weight_sparsity"), ({"weight_method": "topk"}, "weight_method"),
    ({"weight_allocation": "per_layer"}, "weight_allocation"),
    ({"weight_method": "2:4", "weight_sparsity": 0.3}, "weight_sparsity"),
    ({"weight_method": "2:4_movement"}, "weight_sparsity"),
])
def test_weight_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"PruningConfig\.{field}"):
        PruningConfig(**overrides)


def test_weight_method_registry():
    assert {"movement", "soft_movement", "magnitude", "2:4", "2:4_movement"} <= set(WEIGHT_METHODS)
    assert WEIGHT_METHODS["2:4"].pattern_sparsity() == 0.5
    with pytest.raises(ValueError, match="already registered"):
        register_weight_method("magnitude")(type("Again", (), {}))
    config = PruningConfig(weight_method="2:4", weight_sparsity=0.5, weight_allocation="global")
    assert PruningConfig.from_dict(config.to_dict()) == config


# -- Trainer runs ------------------------------------------------------------------------------------------------


class ScheduleRecorder(TrainerCallback):
    """Records, after every step, the head and weight sparsities the pruning callback scheduled."""

    def __init__(self, pruning: MovementPruningCallback) -> None:
        self.pruning = pruning
        self.history: list[tuple[int, float, float]] = []

    def on_step_end(self, args, state, control, **kwargs):
        pruner = self.pruning.pruner
        self.history.append((state.global_step, pruner.sparsity[UnitKind.HEADS], pruner.weights.sparsity))


def test_combined_head_ffn_and_weight_pruning_in_one_trainer_run(tmp_path, tiny_inputs):
    model = tiny_model("bert")
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, weight_sparsity=0.5, weight_method="movement",
                           mask_update_interval=2)
    pruning = MovementPruningCallback(config)
    recorder = ScheduleRecorder(pruning)
    trainer = Trainer(model=model, args=training_args(tmp_path), train_dataset=synthetic_classification(),
                      callbacks=[pruning, recorder])
    trainer.train()
    # one schedule: the weight sparsity is the head sparsity scaled to its own target, at every step
    assert [w for _, _, w in recorder.history] == [h for _, h, _ in recorder.history]
    assert len({h for _, h, _ in recorder.history}) > 3
    report = pruning_callback(trainer).report
    assert (report.heads_kept, report.neurons_kept) == (4, 48)
    assert report.weights_total == 2 * (4 * 16 * 32 + 2 * 24 * 32)
    for zeros, size in pruned_per_matrix(model):
        assert abs(zeros - 0.5 * size) <= 1
    assert report.nonzero_params == sum(p.numel() for p in model.parameters()) - report.weights_total // 2
    model.eval()
    save_compressed(model, tmp_path / "sparse")
    assert torch.equal(logits(load_compressed(tmp_path / "sparse"), tiny_inputs), logits(model, tiny_inputs))


def _run(output_dir, resume=None, stop_at=None):
    model = tiny_model("bert", seed=0)
    config = PruningConfig(ffn_sparsity=0.5, weight_sparsity=0.6, weight_method="soft_movement",
                           mask_update_interval=3, compact_on_train_end=False)
    callbacks = [MovementPruningCallback(config)] + ([StopAt(stop_at)] if stop_at else [])
    args = training_args(output_dir, max_steps=24, save_strategy="steps", save_steps=5)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return pruning_callback(trainer).pruner


def test_resumed_run_ends_with_the_same_weight_masks(tmp_path):
    uninterrupted = _run(tmp_path / "a")
    _run(tmp_path / "b", stop_at=13)  # killed after step 13; last checkpoint is step 10, mid-ramp
    resumed = _run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-10"))
    for expected, got in zip(uninterrupted.weights.masks, resumed.weights.masks, strict=True):
        assert torch.equal(expected, got)
    for expected, got in zip(uninterrupted.weights.scores, resumed.weights.scores, strict=True):
        assert torch.allclose(expected, got, rtol=1e-5, atol=1e-9)
    assert resumed.weights.method.thresholds == pytest.approx(uninterrupted.weights.method.thresholds, rel=1e-5)
    assert resumed.weights.sparsity == 0.6 and resumed.weights.scored_steps == 24
    for name, (pruned, total) in resumed.weights.matrix_sparsity().items():
        assert abs(pruned - 0.6 * total) <= 1, name


def test_two_process_gloo_run_has_identical_weight_masks_on_both_ranks(tmp_path):
    ranks = run_two_processes("ddp_weight_pruning_worker.py", tmp_path)
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["masks"] == ranks[1]["masks"]
    assert ranks[0]["kept"] == ranks[1]["kept"] == round(0.5 * ranks[0]["total"])
