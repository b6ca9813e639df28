"""Schedule, mask selection and scorers, checked against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

from hfprune.pruning import PruningConfig, StructuredPruner, cubic_sparsity
from hfprune.pruning.masks import select_masks
from hfprune.pruning.scoring import SCORERS, build_scorer, register_scorer
from hfprune.pruning.units import UnitKind, unit_groups


def test_cubic_schedule_values():
    kwargs = dict(total_steps=100, final_sparsity=0.8, warmup_steps=10, cooldown_steps=10)
    assert cubic_sparsity(0, **kwargs) == 0.0
    assert cubic_sparsity(9, **kwargs) == 0.0
    assert cubic_sparsity(10, **kwargs) == 0.0
    assert cubic_sparsity(50, **kwargs) == pytest.approx(0.8 * (1 - 0.5**3))  # halfway through the ramp
    assert cubic_sparsity(90, **kwargs) == 0.8
    assert cubic_sparsity(100, **kwargs) == 0.8
    values = [cubic_sparsity(s, **kwargs) for s in range(101)]
    assert values == sorted(values)


def test_select_masks_per_layer_global_and_minimum():
    scores = [torch.tensor([4.0, 1.0, 3.0, 2.0]), torch.tensor([0.1, 0.2, 0.3, 0.4])]
    per_layer = select_masks(scores, 0.5, "per_layer", 1)
    assert [m.tolist() for m in per_layer] == [[1, 0, 1, 0], [0, 0, 1, 1]]
    # global: the 4 lowest of all 8 go, but layer 1 keeps its best unit
    global_ = select_masks(scores, 0.5, "global", 1)
    assert [m.tolist() for m in global_] == [[1, 0, 1, 1], [0, 0, 0, 1]]
    # ties break by position, identically every time: the first unit is the protected "best", then the
    # lowest-index units are removed first
    ties = select_masks([torch.zeros(4)], 0.5, "global", 1)
    assert ties[0].tolist() == [1, 0, 0, 1]


def _zero_grads(model):
    for p in model.parameters():
        p.grad = torch.zeros_like(p)


def test_movement_score_is_minus_weight_times_grad_summed_per_head():
    model = tiny_model("bert")
    _zero_grads(model)
    query = model.bert.encoder.layer[0].attention.self.query
    query.weight.grad[16:24] = -query.weight.detach()[16:24]  # head 2 of layer 0 (head_dim 8)
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=0.5, scoring="movement"))
    pruner.accumulate_scores()
    pruner.accumulate_scores()
    expected = 2 * (query.weight.detach()[16:24] ** 2).sum()
    scores = pruner.scores[UnitKind.HEADS]
    assert torch.allclose(scores[0], torch.tensor([0.0, 0.0, expected.item(), 0.0]))
    assert torch.count_nonzero(scores[1]) == 0


def test_snip_momentum_is_a_moving_sum_of_absolute_weight_times_grad():
    model = tiny_model("bert")
    _zero_grads(model)
    query = model.bert.encoder.layer[0].attention.self.query
    value = model.bert.encoder.layer[0].attention.self.value
    query.weight.grad[16:24] = -query.weight.detach()[16:24]  # head 2 of layer 0 (head_dim 8)
    value.weight.grad[16:24] = value.weight.detach()[16:24]  # opposite sign: movement would let them cancel
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=0.5, scoring="snip_momentum"))
    pruner.accumulate_scores()
    step = ((query.weight.detach()[16:24] ** 2).sum() + (value.weight.detach()[16:24] ** 2).sum()).item()
    assert pruner.scores[UnitKind.HEADS][0][2].item() == pytest.approx(step, rel=1e-6)
    _zero_grads(model)  # a step without gradient for the head: its score decays by the momentum
    pruner.accumulate_scores()
    assert pruner.scores[UnitKind.HEADS][0][2].item() == pytest.approx(0.9 * step, rel=1e-6)
    assert torch.count_nonzero(pruner.scores[UnitKind.HEADS][0]) == 1


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_head_importance_equals_gate_gradient(arch, tiny_inputs):
    """Michel et al.'s |dL/d gate| through an explicit gate equals the scorer's weight-gradient identity."""
    model = tiny_model(arch)
    labels = torch.tensor([0, 1, 1])
    group = unit_groups(model, UnitKind.HEADS)[1]
    gate = torch.ones(group.num_units, requires_grad=True)
    handle = group.consumer.register_forward_pre_hook(
        lambda module, args: (args[0] * gate.repeat_interleave(group.unit_width),))
    model(**tiny_inputs, labels=labels).loss.backward()
    handle.remove()
    state = torch.zeros(group.num_units)
    build_scorer("head_importance").accumulate(group, state)
    assert torch.allclose(state, gate.grad.abs(), rtol=1e-4, atol=1e-7)


def test_magnitude_and_random_scores():
    model = tiny_model("gpt2")
    group = unit_groups(model, UnitKind.NEURONS)[0]
    magnitude = build_scorer("magnitude").score(group, torch.zeros(group.num_units))
    c_fc, c_proj = model.transformer.h[0].mlp.c_fc, model.transformer.h[0].mlp.c_proj
    expected = c_fc.weight.abs().sum(0) + c_fc.bias.abs() + c_proj.weight.abs().sum(1)
    assert torch.allclose(magnitude, expected.detach())
    first = build_scorer("random", seed=5).score(group, torch.zeros(group.num_units))
    again = build_scorer("random", seed=5).score(group, torch.zeros(group.num_units))
    other = build_scorer("random", seed=6).score(group, torch.zeros(group.num_units))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_scorer_registry_rejects_duplicates():
    assert {"movement", "magnitude", "random", "head_importance", "snip_momentum"} <= set(SCORERS)
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("movement")(type("Again", (), {}))


def test_non_finite_gradients_are_skipped():
    model = tiny_model("bert")
    _zero_grads(model)
    model.bert.encoder.layer[0].output.dense.weight.grad[0, 0] = float("inf")
    pruner = StructuredPruner(model, PruningConfig(ffn_sparsity=0.5))
    assert pruner.accumulate_scores() is False
    assert all(torch.count_nonzero(s) == 0 for s in pruner.scores[UnitKind.NEURONS])
