"""Latency targets (issue #21): the measured table (with an injected timer, so numbers not timings are checked),
its cache, the greedy widths under a budget, and the pruner / one-shot paths that use them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_model
from helpers import (
    ATTENTION_S,
    BASE_S,
    FFN_S,
    FLOOR_S,
    HEAD_S,
    LAYER_FLOOR_S,
    NEURON_S,
    FakeTimer,
    fake_seconds,
)

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning import PruningConfig, StructuredPruner, prune
from hfprune.pruning.latency_budget import predicted_ms, select_for_latency
from hfprune.pruning.latency_table import LatencyTable, cache_path, latency_table, measure_table, table_setting
from hfprune.pruning.units import UnitKind, unit_groups


def test_table_recovers_the_cost_model_and_interpolates():
    model = tiny_model("bert")  # 2 layers, 4 heads, 48 FFN neurons
    table = measure_table(model, batch_size=2, seq_len=8, rounds=3, timer=FakeTimer(), neuron_steps=[1, 24, 48])
    assert table.head_steps == [0, 1, 2, 3, 4] and table.neuron_steps == [0, 1, 24, 48]
    assert table.floor_ms == pytest.approx(1000 * FLOOR_S)  # every block emptied
    assert table.attention_ms == pytest.approx([0.0] + [1000 * (HEAD_S * k + ATTENTION_S) for k in range(1, 5)])
    assert table.ffn_ms == pytest.approx([0.0] + [1000 * (NEURON_S * n + FFN_S) for n in (1, 24, 48)])
    assert table.ffn(12) == pytest.approx(1000 * (NEURON_S * 12 + FFN_S))  # linear between the measured 1 and 24
    assert table.dense_ms == pytest.approx(1000 * fake_seconds(model))
    assert table.dense_predicted_ms == pytest.approx(table.dense_ms)  # the cost model is additive
    assert table.predict([0, 2], [0, 48]) == pytest.approx(
        1000 * (FLOOR_S + HEAD_S * 2 + ATTENTION_S + NEURON_S * 48 + FFN_S))
    assert table.setting["batch_size"] == 2 and table.setting["shapes"]["head_units"] == 4
    assert LatencyTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_model("bert").parameters())


def test_noisy_dips_are_fitted_away_and_blocks_scaled_to_the_measured_dense():
    attention = {0: 0.0, 1: 1.0, 2: 3.0, 3: 2.0, 4: 4.0}  # ms per layer; 3 heads timed faster than 2: noise

    def timer(models, inputs, rounds):
        def ms(model):
            heads = [g.num_units for g in unit_groups(model, UnitKind.HEADS)]
            neurons = [g.num_units for g in unit_groups(model, UnitKind.NEURONS)]
            extra = 1.0 if heads == [4, 4] and neurons == [48, 48] else 0.0  # the dense model: blocks do not add up
            return 2.0 + sum(attention[h] for h in heads) + 0.01 * sum(neurons) + extra
        return {name: [ms(model) / 1000] * rounds for name, model in models.items()}

    table = measure_table(tiny_model("bert"), rounds=2, timer=timer, neuron_steps=[1, 48])
    assert table.raw_attention_ms == pytest.approx([0, 1, 3, 2, 4])
    scale = (11.96 - 2.0) / (2 * (4 + 0.48))
    assert table.attention_ms == pytest.approx([0, scale, 2.5 * scale, 2.5 * scale, 4 * scale])  # isotonic fit
    assert table.ffn_ms == pytest.approx([0, 0.01 * scale, 0.48 * scale])
    assert (table.floor_ms, table.dense_ms) == pytest.approx((2.0, 11.96))
    assert table.additivity == pytest.approx((2.0 + 2 * 4.48) / 11.96)
    assert table.dense_predicted_ms == pytest.approx(table.dense_ms)


def test_table_is_cached_by_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path))
    model = tiny_model("bert")
    timer = FakeTimer()
    first = latency_table(model, batch_size=1, seq_len=8, rounds=2, timer=timer)
    measured = timer.calls
    assert measured > 0 and cache_path(first.setting).is_file()
    assert cache_path(first.setting).parent.parent == tmp_path
    again = latency_table(model, batch_size=1, seq_len=8, rounds=2, timer=timer)
    assert again == first and timer.calls == measured  # read, not re-timed
    other = latency_table(model, batch_size=4, seq_len=8, rounds=2, timer=timer)
    assert timer.calls > measured and cache_path(other.setting) != cache_path(first.setting)
    assert table_setting(model, 1, 8, 2) != first.setting  # threads are part of the key
    cache_path(first.setting).write_text("{not json")  # a damaged cache entry is measured again and replaced
    calls = timer.calls
    assert latency_table(model, batch_size=1, seq_len=8, rounds=2, timer=timer) == first and timer.calls > calls
    assert LatencyTable.load(cache_path(first.setting)) == first


def hand_table() -> LatencyTable:
    """2 layers; attention 1 ms + 0.5 ms per head, FFN 0.125 ms per neuron beyond the first; floor 1 ms.
    Dense: 1 + 2 * 3 + 2 * 5.875 = 18.75 ms. Binary-exact numbers, so budgets compare exactly."""
    return LatencyTable(setting={}, layers=2, head_steps=[0, 1, 2, 3, 4], attention_ms=[0, 1.5, 2, 2.5, 3],
                        neuron_steps=[1, 48], ffn_ms=[0, 5.875], floor_ms=1.0, dense_ms=18.75)


def hand_scores() -> dict[UnitKind, list[torch.Tensor]]:
    """Layer 0's heads matter a lot, layer 1's hardly; layer 0's neurons matter less than layer 1's."""
    return {UnitKind.HEADS: [torch.full((4,), 10.0), torch.tensor([0.1, 0.2, 0.3, 0.4])],
            UnitKind.NEURONS: [1 + 0.001 * torch.arange(48.0), 2 + 0.01 * torch.arange(48.0)]}


@pytest.mark.parametrize("min_heads", [0, 1])
def test_greedy_widths_meet_the_budget_and_keep_the_best_units(min_heads):
    table = hand_table()
    budget = table.dense_predicted_ms / 2  # 9.375 ms
    masks = select_for_latency(hand_scores(), table, budget, {UnitKind.HEADS: min_heads, UnitKind.NEURONS: 1},
                               {UnitKind.HEADS: 1, UnitKind.NEURONS: 1})
    # per ms: layer 1's heads cost least score, then layer 0's neurons, then layer 1's lowest neurons; layer 0's
    # heads never go. min_heads 0: attention 1 emptied (-3 ms), 47 + 4 neurons (-6.375 ms). min_heads 1: its best
    # head stays (-1.5 ms), 47 + 16 neurons (-7.875 ms).
    assert masks[UnitKind.HEADS][0].tolist() == [1, 1, 1, 1]
    assert masks[UnitKind.HEADS][1].tolist() == [0, 0, 0, min_heads]
    assert masks[UnitKind.NEURONS][0].tolist() == [0] * 47 + [1]
    removed = 4 if min_heads == 0 else 16
    assert masks[UnitKind.NEURONS][1].tolist() == [0] * removed + [1] * (48 - removed)
    assert predicted_ms(table, masks) == budget


@pytest.mark.parametrize("min_neurons", [0, 1])
def test_an_ffn_block_whose_neurons_do_not_pay_goes_entirely(min_neurons):
    # an FFN block costs 2 ms beyond its neurons (ffn(1)); dense 1 + 2 * 3 + 2 * 7.875 = 22.75 ms
    table = LatencyTable(setting={}, layers=2, head_steps=[0, 1, 2, 3, 4], attention_ms=[0, 1.5, 2, 2.5, 3],
                         neuron_steps=[0, 1, 48], ffn_ms=[0, 2.0, 7.875], floor_ms=1.0, dense_ms=22.75)
    scores = {UnitKind.HEADS: [torch.full((4,), 10.0)] * 2,
              UnitKind.NEURONS: [torch.full((48,), 0.01), 1 + 0.01 * torch.arange(48.0)]}
    budget = 22.75 - 7.875  # exactly layer 0's whole FFN block
    masks = select_for_latency(scores, table, budget, {UnitKind.HEADS: 1, UnitKind.NEURONS: min_neurons},
                               {UnitKind.HEADS: 1, UnitKind.NEURONS: 1})
    assert masks[UnitKind.NEURONS][1].tolist() == [1] * 48
    assert int(masks[UnitKind.NEURONS][0].sum()) == min_neurons
    assert predicted_ms(table, masks) <= budget
    if min_neurons:  # the block's last neuron stays, so 2 ms more must come from heads
        assert sum(int(m.sum()) for m in masks[UnitKind.HEADS]) < 8
    else:
        assert all(m.tolist() == [1] * 4 for m in masks[UnitKind.HEADS])
        assert predicted_ms(table, masks) == budget


def test_emptying_moves_do_not_overshoot_a_small_remaining_budget():
    # the same block is cheapest to empty per ms, but 0.125 ms (one neuron) is all the budget asks
    table = LatencyTable(setting={}, layers=2, head_steps=[0, 1, 2, 3, 4], attention_ms=[0, 1.5, 2, 2.5, 3],
                         neuron_steps=[0, 1, 48], ffn_ms=[0, 2.0, 7.875], floor_ms=1.0, dense_ms=22.75)
    scores = {UnitKind.HEADS: [torch.full((4,), 10.0)] * 2,
              UnitKind.NEURONS: [torch.full((48,), 0.01), 1 + 0.01 * torch.arange(48.0)]}
    masks = select_for_latency(scores, table, 22.75 - 0.125, {UnitKind.HEADS: 1, UnitKind.NEURONS: 0},
                               {UnitKind.HEADS: 1, UnitKind.NEURONS: 1})
    assert [int(m.sum()) for m in masks[UnitKind.NEURONS]] == [47, 48]


def test_a_format_2_table_reads_and_keeps_one_neuron_per_ffn_block():
    # format 2 (older hfprune) measured its floor with one FFN neuron, so it cannot cost an emptied block
    old = LatencyTable.from_dict({**hand_table().to_dict(), "format": 2})
    assert old.narrowest(UnitKind.NEURONS) == 1
    masks = select_for_latency(hand_scores(), old, 4.0, {UnitKind.HEADS: 0, UnitKind.NEURONS: 0},
                               {UnitKind.HEADS: 1, UnitKind.NEURONS: 1})
    assert [int(m.sum()) for m in masks[UnitKind.NEURONS]] == [1, 1]
    with pytest.raises(HfpruneError, match="expected latency table format 2 or 3 or 4, got 1"):
        LatencyTable.from_dict({**hand_table().to_dict(), "format": 1})


def test_a_removed_layer_costs_nothing_of_its_blocks_nor_its_layer_floor():
    """3 layers: the table recovers the fake layer floor; a model with its middle layer removed is predicted at the
    table's sum for its remaining blocks with one layer floor less, which is what it costs (the fake cost model)."""
    import copy

    from transformers import BertConfig, BertForSequenceClassification

    from hfprune.pruning import compaction
    from hfprune.pruning.latency_report import latency_report, widths
    from hfprune.pruning.layers import remove_layers

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3,
                                                     num_attention_heads=4, intermediate_size=48)).eval()
    table = measure_table(model, rounds=1, timer=FakeTimer(), neuron_steps=[1, 24, 48])
    assert table.layer_floor_ms == pytest.approx(1000 * LAYER_FLOOR_S)
    assert table.floor_ms == pytest.approx(1000 * (BASE_S + 3 * LAYER_FLOOR_S))
    pruned = copy.deepcopy(model)
    keep = [torch.tensor([1.0, 1, 1, 1]), torch.tensor([1.0, 1, 0, 0]), torch.tensor([0.0, 0, 0, 0])]
    compaction.compact(pruned, {UnitKind.HEADS: keep, UnitKind.NEURONS: [
        torch.ones(48), (torch.arange(48) < 24).float(), (torch.arange(48) < 12).float()]})
    remove_layers(pruned, [0, 2])  # the middle layer (2 heads, 24 neurons) goes whole
    assert widths(pruned) == ([4, 0], [48, 12])
    blocks = table.attention(4) + table.attention(0) + table.ffn(48) + table.ffn(12)
    assert table.predict([4, 0], [48, 12]) == pytest.approx(table.floor_ms - table.layer_floor_ms + blocks)
    assert table.predict([4, 0], [48, 12]) == pytest.approx(
        1000 * (BASE_S + 2 * LAYER_FLOOR_S + 4 * HEAD_S + ATTENTION_S + 60 * NEURON_S + 2 * FFN_S))
    assert table.predict([4, 0], [48, 12]) == pytest.approx(1000 * fake_seconds(pruned))
    assert latency_report(pruned, table).predicted_ms == pytest.approx(1000 * fake_seconds(pruned))
    # a format-3 table has no layer floor: a removed layer saves its blocks only (a slower prediction, never faster)
    old = {k: v for k, v in table.to_dict().items() if k != "layer_floor_ms"} | {"format": 3}
    assert LatencyTable.from_dict(old).predict([4, 0], [48, 12]) == pytest.approx(table.floor_ms + blocks)
    for heads, neurons in (([4] * 4, [48] * 4), ([], []), ([4], [48, 48])):
        with pytest.raises(HfpruneError, match="expected widths of 1 to 3 layers"):
            table.predict(heads, neurons)


def test_round_to_removes_whole_steps():
    table = hand_table()
    masks = select_for_latency(hand_scores(), table, 12.0, {UnitKind.HEADS: 1, UnitKind.NEURONS: 1},
                               {UnitKind.HEADS: 1, UnitKind.NEURONS: 16})
    widths = [int(m.sum()) for m in masks[UnitKind.NEURONS]]
    assert all(w % 16 == 0 or w == 1 for w in widths) and predicted_ms(table, masks) <= 12.0


@pytest.mark.parametrize("overrides,field", [
    ({"latency_target": 0.5}, "latency_target"),
    ({"latency_target": 2.0, "latency_target_ms": 5.0}, "latency_target_ms"),
    ({"latency_target": 2.0, "head_sparsity": 0.5}, "head_sparsity"),
    ({"latency_target_ms": 5.0, "ffn_sparsity": 0.5}, "ffn_sparsity"),
    ({"latency_target": 2.0, "allocation": "uniform"}, "allocation"),
    ({"latency_target": 2.0, "scoring": "soft_movement"}, "scoring"),
    ({"latency_target_ms": -1.0}, "latency_target_ms"),
    ({"latency_threads": 0}, "latency_threads"),
    ({"latency_seq_len": 0}, "latency_seq_len"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"^PruningConfig\.{field}: ") as error:
        PruningConfig(**overrides)
    assert "\n" not in str(error.value)


def tiny_table(model) -> LatencyTable:
    return measure_table(model, batch_size=1, seq_len=8, rounds=1, timer=FakeTimer())


def test_unreachable_target_is_refused_before_pruning():
    model = tiny_model("bert")
    with pytest.raises(ConfigError, match=r"^PruningConfig\.latency_target: 50x is out of reach"):
        StructuredPruner(model, PruningConfig(latency_target=50.0, scoring="magnitude"),
                         latency_table=tiny_table(model))


def costly_ffn_blocks(table: LatencyTable) -> LatencyTable:
    """``table`` with FFN blocks that cost 5 ms beyond their neurons: emptying one pays."""
    return LatencyTable.from_dict({**table.to_dict(), "ffn_ms": [0.0] + [f + 5.0 for f in table.ffn_ms[1:]]})


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_masked_logits_equal_compacted_logits_under_budget(arch, tiny_inputs):
    model = tiny_model(arch)
    table = costly_ffn_blocks(tiny_table(model))
    config = PruningConfig(latency_target=1.5, scoring="magnitude", min_heads_per_layer=0, min_neurons_per_layer=0)
    pruner = StructuredPruner(model, config, latency_table=table)
    pruner.update_masks(1, 1)
    assert predicted_ms(table, pruner.masks) <= table.dense_predicted_ms / 1.5
    with torch.no_grad():
        masked = model(**tiny_inputs).logits
    pruner.compact()
    with torch.no_grad():
        compacted = model(**tiny_inputs).logits
    torch.testing.assert_close(compacted, masked, rtol=1e-5, atol=1e-5)
    kept = ([g.num_units for g in unit_groups(model, UnitKind.HEADS)],
            [g.num_units for g in unit_groups(model, UnitKind.NEURONS)])
    assert table.predict(*kept) == predicted_ms(table, pruner.masks)
    assert 0 in kept[1]  # an FFN block went entirely


def test_one_shot_prune_reaches_the_target_without_data():
    model = tiny_model("bert")
    table = tiny_table(model)
    prune(model, PruningConfig(latency_target=1.3, scoring="random"), latency_table=table)
    heads = [g.num_units for g in unit_groups(model, UnitKind.HEADS)]
    neurons = [g.num_units for g in unit_groups(model, UnitKind.NEURONS)]
    assert min(heads) >= 1 and table.predict(heads, neurons) <= table.dense_predicted_ms / 1.3


def test_removed_layers_cost_nothing_in_the_width_search():
    """With layer 1 removed (layer_sparsity), the search prunes layer 0 alone down to the budget, minus the removed
    layer's blocks and layer floor; layer 1's masks stay whole (it goes at compaction); the minimum widths hold."""
    import dataclasses

    table = dataclasses.replace(hand_table(), layer_floor_ms=0.5)  # one layer: 0.5 + 3 + 5.875 ms
    minimum = {UnitKind.HEADS: 1, UnitKind.NEURONS: 1}
    masks = select_for_latency(hand_scores(), table, 6.0, minimum, {UnitKind.HEADS: 1, UnitKind.NEURONS: 1},
                               removed_layers=[1])
    assert [float(m.sum()) for m in (masks[UnitKind.HEADS][1], masks[UnitKind.NEURONS][1])] == [4.0, 48.0]
    heads, neurons = int(masks[UnitKind.HEADS][0].sum()), int(masks[UnitKind.NEURONS][0].sum())
    assert heads >= 1 and neurons >= 1
    assert predicted_ms(table, masks, [1]) == table.predict([heads], [neurons]) <= 6.0
    assert table.predict([heads], [neurons]) == 1.0 - 0.5 + table.attention(heads) + table.ffn(neurons)
    # the same budget without the removed layer: both layers are cut, to the same predicted total or less
    both = select_for_latency(hand_scores(), table, 6.0, minimum, {UnitKind.HEADS: 1, UnitKind.NEURONS: 1})
    assert int(both[UnitKind.HEADS][0].sum()) + int(both[UnitKind.NEURONS][0].sum()) < heads + neurons


@pytest.mark.parametrize(("target", "pruned_units"), [(1.3, False), (2.0, True)])
def test_one_shot_latency_target_with_layer_sparsity(target, pruned_units):
    """2 layers, one removed by block influence: 1.3x is met by the removal alone (the kept layer stays whole),
    2.0x also cuts the kept layer's widths; the compacted model is predicted at its fake cost, within the target."""
    model = tiny_model("bert")
    table = tiny_table(model)
    generator = torch.Generator().manual_seed(5)
    data = [{"input_ids": (ids := torch.randint(3, 99, (4, 9), generator=generator)),
             "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1, 0])} for _ in range(2)]
    prune(model, PruningConfig(latency_target=target, layer_sparsity=0.5, scoring="magnitude"), data,
          latency_table=table)
    heads = [g.num_units for g in unit_groups(model, UnitKind.HEADS)]
    neurons = [g.num_units for g in unit_groups(model, UnitKind.NEURONS)]
    assert model.config.num_hidden_layers == len(heads) == 1
    assert ((heads, neurons) != ([4], [48])) is pruned_units and min(heads) >= 1 and min(neurons) >= 1
    assert table.predict(heads, neurons) == pytest.approx(1000 * fake_seconds(model))
    assert table.predict(heads, neurons) <= table.dense_predicted_ms / target


def test_logs_schedule_the_latency_budget_not_sparsities():
    from hfprune.pruning.stats import training_log

    model = tiny_model("bert")
    config = PruningConfig(latency_target=1.4, scoring="magnitude", warmup_ratio=0.0, cooldown_ratio=0.0)
    pruner = StructuredPruner(model, config, latency_table=tiny_table(model))
    dense = pruner.latency.table.dense_predicted_ms
    assert pruner.scheduled_sparsities(0, 10) == {"weight": 0.0, "latency_ms": pytest.approx(dense)}
    assert pruner.scheduled_sparsities(10, 10)["latency_ms"] == pytest.approx(dense / 1.4)
    logged = training_log(model, pruner.scheduled_sparsities(10, 10), seq_len=8)
    assert logged["pruning/target_latency_ms"] == pytest.approx(dense / 1.4)
    assert "pruning/target_head_sparsity" not in logged


def test_resume_keeps_the_table_and_the_masks():
    model = tiny_model("bert")
    config = PruningConfig(latency_target=1.4, scoring="magnitude", warmup_ratio=0.0, cooldown_ratio=0.0,
                           min_neurons_per_layer=0)
    table = costly_ffn_blocks(tiny_table(model))
    first = StructuredPruner(model, config, latency_table=table)
    first.update_masks(5, 10)
    state = json.loads(json.dumps(first.state_dict()))
    first.detach()
    other = LatencyTable.from_dict({**table.to_dict(), "attention_ms": [2 * a for a in table.attention_ms]})
    second = StructuredPruner(model, config, latency_table=other)
    second.load_state_dict(state)
    assert second.latency.table == table
    for kind in first.masks:
        assert all(torch.equal(a, b) for a, b in zip(first.masks[kind], second.masks[kind], strict=True))
    first.update_masks(8, 10)
    second.update_masks(8, 10)
    assert any(float(m.sum()) < m.numel() for masks in first.masks.values() for m in masks)
    assert any(float(m.sum()) == 0 for m in first.masks[UnitKind.NEURONS])  # an emptied FFN block resumes too
    for kind in first.masks:
        assert all(torch.equal(a, b) for a, b in zip(first.masks[kind], second.masks[kind], strict=True))


def test_saved_model_carries_its_table_and_reports_predicted_and_measured(tmp_path, monkeypatch):
    from hfprune import latency_report, load_pruned, save_pruned
    from hfprune.utils import timing

    dense = tiny_model("bert")
    model = tiny_model("bert")
    table = tiny_table(model)
    prune(model, PruningConfig(latency_target=1.3, scoring="magnitude"), latency_table=table)
    predicted = table.predict([g.num_units for g in unit_groups(model, UnitKind.HEADS)],
                              [g.num_units for g in unit_groups(model, UnitKind.NEURONS)])
    save_pruned(model, tmp_path / "pruned")
    saved = json.loads((tmp_path / "pruned" / "latency_table.json").read_text())
    assert LatencyTable.from_dict(saved) == table
    assert saved["prediction"]["predicted_ms"] == pytest.approx(predicted)
    reloaded = load_pruned(tmp_path / "pruned")
    monkeypatch.setattr(timing, "interleaved_timings", FakeTimer())  # measured = the fake cost model, exactly
    report = latency_report(reloaded, dense=dense, rounds=3)
    assert report.predicted_speedup == pytest.approx(table.dense_predicted_ms / predicted)
    assert report.predicted_speedup >= 1.3
    measured = report.measured
    assert measured.speedup == pytest.approx(fake_seconds(dense) / fake_seconds(reloaded))
    assert measured.speedup == pytest.approx(report.predicted_speedup)  # the fake cost model is additive
    assert measured.pruned_ms == pytest.approx(1000 * fake_seconds(reloaded))
    assert (report.batch_size, report.seq_len, report.threads, measured.rounds) == (1, 8, 1, 3)
    assert report.to_dict()["measured"]["speedup"] == measured.speedup
    with pytest.raises(HfpruneError, match="^latency_report: this model has no latency table"):
        latency_report(tiny_model("bert"))


def _trainer_run(output_dir, resume=None, stop_at=None):
    from pruning_trainer_utils import StopAt, pruning_callback, synthetic_classification, training_args
    from transformers import Trainer

    from hfprune import MovementPruningCallback

    model = tiny_model("bert", seed=0)
    config = PruningConfig(latency_target=1.3, mask_update_interval=3, compact_on_train_end=False)
    callbacks = [MovementPruningCallback(config)] + ([StopAt(stop_at)] if stop_at else [])
    args = training_args(output_dir, max_steps=24, save_strategy="steps", save_steps=5)
    trainer = Trainer(model=model, args=args, train_dataset=synthetic_classification(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return pruning_callback(trainer).pruner


def test_callback_reaches_the_target_and_resumes_with_its_table(tmp_path, monkeypatch):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    table = tiny_table(tiny_model("bert"))
    setting = table_setting(tiny_model("bert"), 1, 128, 1)  # the config's default latency setting
    table = LatencyTable.from_dict({**table.to_dict(), "setting": setting})
    table.save(cache_path(setting))  # the cached table: no timing in this test
    uninterrupted = _trainer_run(tmp_path / "a")
    _trainer_run(tmp_path / "b", stop_at=13)
    # the resumed run takes the table its checkpoint holds: no cached table, and timing one would fail the test
    cache_path(setting).unlink()
    import hfprune.pruning.latency_table as latency_table_module

    def no_timing(*args, **kwargs):
        raise AssertionError("a resumed run re-timed its latency table")

    monkeypatch.setattr(latency_table_module, "measure_table", no_timing)
    resumed = _trainer_run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-10"))
    assert resumed.latency.table == table
    for kind in (UnitKind.HEADS, UnitKind.NEURONS):
        assert all(torch.equal(a, b) for a, b in zip(uninterrupted.masks[kind], resumed.masks[kind], strict=True))
    assert resumed.latency.progress == 1.0
    assert predicted_ms(table, resumed.masks) <= table.dense_predicted_ms / 1.3


def test_two_process_run_times_one_table_and_agrees_on_masks(tmp_path):
    from pruning_trainer_utils import run_two_processes

    ranks = run_two_processes("ddp_latency_worker.py", tmp_path)
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["table"] == ranks[1]["table"]  # timed on rank 0 and sent, not timed twice
    assert ranks[0]["masks"] == ranks[1]["masks"]
    table = LatencyTable.from_dict(ranks[0]["table"])
    # rank 0's made-up clock (rank 1's is 3x slower): the shared table is rank 0's
    assert table.dense_ms == pytest.approx(1000 * fake_seconds(tiny_model("bert")))
    masks = {UnitKind(kind): [torch.tensor(m) for m in layers] for kind, layers in ranks[0]["masks"].items()}
    assert predicted_ms(table, masks) <= table.dense_predicted_ms / 1.1


def test_a_config_prunes_nothing_only_without_any_sparsity_or_latency_target():
    from hfprune.pruning.config import PruningConfig

    assert PruningConfig().prunes_nothing  # the same-training control of a sweep's level 0
    for removes in ({"head_sparsity": 0.1}, {"ffn_sparsity": 0.1}, {"layer_sparsity": 0.2}, {"weight_sparsity": 0.5},
                    {"latency_target": 1.5}, {"latency_target_ms": 3.0}):
        assert not PruningConfig(**removes).prunes_nothing, removes
