"""Schedule, mask selection and scorers, checked against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_ARCHS, tiny_model

from hfprune.pruning import PruningConfig, StructuredPruner, cubic_sparsity
from hfprune.pruning.masks import select_masks
from hfprune.pruning.scoring import SCORERS, _sum_weight_times_grad, build_scorer, register_scorer
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


class _PassThroughGate(torch.autograd.Function):
    """Reference estimator written out by hand: h * gate forward; the gradient reaches h as if the gate were open,
    and the gate gets sum(grad * h) per unit."""

    @staticmethod
    def forward(ctx, hidden, gate, width):
        ctx.save_for_backward(hidden)
        ctx.width = width
        return hidden * gate.repeat_interleave(width)

    @staticmethod
    def backward(ctx, grad):
        (hidden,) = ctx.saved_tensors
        per_feature = (grad * hidden).reshape(-1, hidden.shape[-1]).sum(0)
        return grad, per_feature.reshape(-1, ctx.width).sum(1), None


def _masked_gradients(arch, inputs, straight_through, reference_gate=False):
    """Logits, consumer / producer gradients of layer 1 with heads 1 and 3 masked, and the reference gate's
    gradient when the mask is the hand-written pass-through gate instead of MaskHooks."""
    from hfprune.pruning.masks import MaskHooks

    model = tiny_model(arch).train()
    group = unit_groups(model, UnitKind.HEADS)[1]
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    gate = mask.clone().requires_grad_(True)
    if reference_gate:
        handle = group.consumer.register_forward_pre_hook(
            lambda module, args: (_PassThroughGate.apply(args[0], gate, group.unit_width),))
    else:
        hooks = MaskHooks()
        hooks.install([group], [mask], straight_through=straight_through)
    output = model(**inputs, labels=torch.tensor([0, 1, 1]))
    output.loss.backward()
    handle.remove() if reference_gate else hooks.remove()
    consumer = group.consumer.weight
    assert isinstance(consumer, torch.nn.Parameter)  # the hooks put the parameter back
    return output.logits.detach(), group, gate.grad


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_straight_through_masks_keep_the_forward_and_pass_the_gradient(arch, tiny_inputs):
    plain_logits, plain, _ = _masked_gradients(arch, tiny_inputs, straight_through=False)
    logits, group, _ = _masked_gradients(arch, tiny_inputs, straight_through=True)
    reference_logits, reference, gate_grad = _masked_gradients(arch, tiny_inputs, True, reference_gate=True)
    assert torch.equal(logits, plain_logits) and torch.equal(logits, reference_logits)
    masked = torch.tensor([1, 3])
    consumer = _sum_weight_times_grad(group.views(producers=False))
    plain_consumer = _sum_weight_times_grad(plain.views(producers=False))
    assert torch.count_nonzero(plain_consumer[masked]) == 0  # the plain mask: masked scores freeze
    assert torch.count_nonzero(consumer[masked]) == 2
    # the consumer columns' W * dL/dW' is the gradient at each unit's gate, masked or kept
    assert torch.allclose(consumer, gate_grad, rtol=1e-4, atol=1e-7)
    # producers get the gradient of the open gate: identical to the hand-written pass-through estimator
    for (_, grad), (_, expected) in zip(group.views(consumer=False), reference.views(consumer=False), strict=True):
        assert torch.count_nonzero(grad[masked]) > 0
        assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_soft_movement_descends_the_l1_penalty_on_sigmoid_scores():
    model = tiny_model("bert")
    _zero_grads(model)
    query = model.bert.encoder.layer[0].attention.self.query
    query.weight.grad[16:24] = -query.weight.detach()[16:24]  # head 2 of layer 0 moves away from zero
    groups = unit_groups(model, UnitKind.HEADS)
    scorer = build_scorer("soft_movement", regularization=0.2, threshold=0.3, head_sparsity=0.5)
    assert (scorer.regularization, scorer.threshold) == (0.2, 0.3)  # settings it does not name are ignored
    start = [torch.tensor([0.0, 1.0, 0.0, -2.0]), torch.tensor([0.5, 0.0, 0.0, 0.0])]
    states = [s.clone() for s in start]
    scorer.accumulate_groups(groups, states, progress=0.5)  # halfway up the ramp: penalty weight 0.1
    # one unit of 8 moved: divided by the RMS over the 8 heads, its step is sqrt(8)
    steps = [torch.tensor([0.0, 0.0, 8**0.5, 0.0]), torch.zeros(4)]
    for state, before, step in zip(states, start, steps, strict=True):
        penalty = 0.1 * torch.sigmoid(before) * (1 - torch.sigmoid(before))  # d/dS of 0.1 * sigmoid(S)
        assert torch.allclose(state, before + step - penalty, rtol=1e-6, atol=1e-7)


def test_soft_movement_keeps_units_over_the_ramped_threshold_within_the_sparsity_cap():
    scorer = build_scorer("soft_movement", threshold=0.5)
    scores = [torch.tensor([2.0, -1.0, -0.5, 0.5]), torch.tensor([-3.0, -2.0, 1.0, 3.0])]
    # final threshold 0.5: units with sigmoid(S) <= 0.5 (S <= 0) go, 4 of 8, within a cap of 6 of 8
    final = scorer.select(scores, 0.75, "global", 1, 1, progress=1.0)
    assert [m.tolist() for m in final] == [[1, 0, 0, 1], [0, 0, 1, 1]]
    # the cap: at most 2 of 8 may go, the lowest scores first
    capped = scorer.select(scores, 0.25, "global", 1, 1, progress=1.0)
    assert [m.tolist() for m in capped] == [[1, 1, 1, 1], [0, 0, 1, 1]]
    # halfway up the ramp the threshold is 0.25: only sigmoid(S) <= 0.25 (S <= -1.0986) goes
    ramp = scorer.select(scores, 0.75, "global", 1, 1, progress=0.5)
    assert [m.tolist() for m in ramp] == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert all(bool(m.all()) for m in scorer.select(scores, 0.0, "global", 1, 1, progress=0.0))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("threshold", 1.0, "PruningConfig.threshold: expected a number in (0, 1), got 1.0"),
    ("threshold", 0, "PruningConfig.threshold: expected a number in (0, 1), got 0"),
    ("regularization", -0.1, "PruningConfig.regularization: expected a finite number >= 0.0, got -0.1"),
])
def test_soft_movement_settings_are_validated(field, value, expected):
    from hfprune.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        PruningConfig(scoring="soft_movement", **{field: value})
    assert str(error.value) == expected


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_straight_through_masked_logits_equal_compacted_logits(arch, tiny_inputs):
    model = tiny_model(arch)
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="movement_ste"))
    pruner.update_masks(step=1, total_steps=1)
    with_gradient = model(**tiny_inputs).logits.detach()  # the estimator's path: W' = W * M and the feedback
    with torch.no_grad():
        plain = model(**tiny_inputs).logits  # no gradient: the plain input mask
    pruner.compact()
    with torch.no_grad():
        compacted = model(**tiny_inputs).logits
    assert torch.equal(with_gradient, plain)
    assert (compacted - plain).abs().max() < 1e-4
