"""Structured pruning on tiny random models: masks, compaction, counts, save/reload, export."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_GQA, tiny_model
from helpers import CASES, logits
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from hfprune.errors import ConfigError, UnsupportedModelError
from hfprune.pruning import (
    PruningConfig,
    StructuredPruner,
    compact,
    export_dense,
    get_architecture,
    load_pruned,
    prune,
    save_pruned,
    sparsity_report,
)
from hfprune.pruning.units import UnitKind, unit_groups


def queries_per_unit(arch: str) -> int:
    """Query heads in one head unit of the default ('group') granularity: a key/value group's."""
    heads, kv_heads, _, _ = TINY_GQA.get(arch, (1, 1, 0, 0))
    return heads // kv_heads


@pytest.mark.parametrize("arch,task", CASES)
@pytest.mark.parametrize("head_sparsity,ffn_sparsity,allocation", [
    (0.25, 0.5, "global"), (0.5, 0.25, "per_layer"), (0.75, 0.9, "global"),
])
def test_compacted_logits_equal_masked_logits(arch, task, head_sparsity, ffn_sparsity, allocation, tiny_inputs):
    model = tiny_model(arch, task)
    dense_logits = logits(model, tiny_inputs)
    config = PruningConfig(head_sparsity=head_sparsity, ffn_sparsity=ffn_sparsity, scoring="random",
                           allocation=allocation, seed=3)
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    masked = logits(model, tiny_inputs)
    assert not torch.allclose(masked, dense_logits)  # masks really change the function
    structure = pruner.compact()
    compacted = logits(model, tiny_inputs)
    assert (compacted - masked).abs().max() < 1e-4
    # each layer keeps exactly the query heads its mask kept, and at least one
    for layer, group in enumerate(unit_groups(model, UnitKind.HEADS, "query")):
        assert group.num_units == len(structure.kept_heads[layer]) >= 1
    report = sparsity_report(model)
    per_unit = queries_per_unit(arch)
    assert report.heads_kept == round((1 - head_sparsity) * report.heads_total / per_unit) * per_unit
    assert report.neurons_kept == round((1 - ffn_sparsity) * report.neurons_total)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.params_dense == sum(p.numel() for p in tiny_model(arch, task).parameters())


def test_global_allocation_can_be_uneven_and_counts_drop():
    model = tiny_model("bert")
    # make layer 0's FFN neurons much larger so global magnitude pruning takes most neurons from layer 1
    with torch.no_grad():
        model.bert.encoder.layer[0].intermediate.dense.weight.mul_(10)
    dense = sparsity_report(model)
    structure = prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    kept = [len(k) for k in structure.kept_neurons]
    assert kept[0] > kept[1] and sum(kept) == 48
    report = sparsity_report(model)
    assert report.params_dense == dense.params == sum(p.numel() for p in tiny_model("bert").parameters())
    # removed parameters: per head 3*(8*32+8) producer + 32*8 consumer, per neuron 32+1 + 32
    assert report.params == dense.params - 4 * (3 * (8 * 32 + 8) + 32 * 8) - 48 * (32 + 1 + 32)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.flops < dense.flops and report.flops_sparsity == pytest.approx(0.5)


@pytest.mark.parametrize("arch,task", CASES)
def test_save_load_and_export_dense_give_identical_logits(arch, task, tiny_inputs, tmp_path):
    model = tiny_model(arch, task)
    prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.4, scoring="magnitude"))
    expected = logits(model, tiny_inputs)
    model.save_pretrained(tmp_path / "pruned")  # a plain save records the structure in config.json
    reloaded = load_pruned(tmp_path / "pruned")
    assert torch.equal(logits(reloaded, tiny_inputs), expected)
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())

    export_dense(model, tmp_path / "dense")
    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    plain = cls.from_pretrained(tmp_path / "dense").eval()
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in tiny_model(arch, task).parameters())
    assert (logits(plain, tiny_inputs) - expected).abs().max() < 1e-5


def test_save_pruned_is_atomic_and_refuses_to_overwrite(tmp_path, tiny_inputs):
    model = tiny_model("bert")
    config = PruningConfig(head_sparsity=0.5, scoring="magnitude")
    prune(model, config)
    out = save_pruned(model, tmp_path / "out", pruning_config=config)
    assert {"config.json", "model.safetensors", "pruning_config.json", "pruning_report.json"} <= {
        p.name for p in out.iterdir()}
    assert PruningConfig.from_pretrained(out) == config
    with pytest.raises(Exception, match="exists and is not empty"):
        save_pruned(model, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_load_pruned_rejects_a_dense_checkpoint(tmp_path):
    tiny_model("bert").save_pretrained(tmp_path / "dense")
    with pytest.raises(Exception, match="not a pruned hfprune checkpoint"):
        load_pruned(tmp_path / "dense")


def test_compaction_twice_composes_kept_indices(tiny_inputs):
    model = tiny_model("bert")
    first = {UnitKind.HEADS: [torch.tensor([1.0, 0, 1, 1]), torch.tensor([0.0, 1, 1, 1])]}
    compact(model, first)
    second = {UnitKind.HEADS: [torch.tensor([1.0, 0, 1]), torch.tensor([1.0, 1, 1])]}
    structure = compact(model, second)
    assert structure.kept_heads == [[0, 3], [1, 2, 3]]


def test_unsupported_model_type_lists_supported():
    from transformers import T5Config

    with pytest.raises(UnsupportedModelError, match=r"\['bert', 'distilbert', 'gpt2', 'llama', 'mistral', 'qwen2', "
                                                    r"'qwen3', 'roberta'\]"):
        get_architecture(T5Config())


@pytest.mark.parametrize("field,value", [
    ("head_sparsity", 1.0), ("ffn_sparsity", -0.1), ("head_sparsity", float("nan")), ("scoring", "taylor2"),
    ("allocation", "layerwise"), ("min_heads_per_layer", -1), ("mask_update_interval", 0), ("head_sparsity", "0.5"),
    ("min_neurons_per_layer", -1),
])
def test_pruning_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        PruningConfig(**{field: value})


@pytest.mark.parametrize("field", ["min_heads_per_layer", "min_neurons_per_layer"])
def test_uniform_allocation_cannot_empty_blocks(field):
    with pytest.raises(ConfigError, match=rf"^PruningConfig\.{field}: allocation 'uniform'"):
        PruningConfig(allocation="uniform", **{field: 0})


def test_pruning_config_rejects_unknown_keys_and_round_trips(tmp_path):
    with pytest.raises(ConfigError, match=r"^PruningConfig.head_sparsty: unknown key "
                       r"\(did you mean .head_sparsity.\?\)"):
        PruningConfig.from_dict({"head_sparsty": 0.5})
    config = PruningConfig(head_sparsity=0.3, ffn_sparsity=0.6, scoring="head_importance", allocation="per_layer")
    config.save_pretrained(tmp_path)
    assert PruningConfig.from_pretrained(tmp_path) == config


# (attention units, FFN neurons) kept per layer: attention emptied in one layer and the FFN in the other; both in one
EMPTY_BLOCKS = {"attention_and_ffn": ([[], [0, 2]], [range(48), range(0, 48, 3)]),
                "ffn": ([[0, 1, 2, 3], [1, 3]], [[], range(0, 48, 3)]),
                "whole_layer": ([[], [0, 2]], [[], range(0, 48, 3)])}


def _indicator(size: int, kept) -> torch.Tensor:
    mask = torch.zeros(size)
    mask[list(kept)] = 1
    return mask


@pytest.mark.parametrize("empty", sorted(EMPTY_BLOCKS))
@pytest.mark.parametrize("arch,task", CASES)
def test_a_layer_can_lose_its_whole_attention_or_ffn_block(arch, task, empty, tiny_inputs, tmp_path):
    model = tiny_model(arch, task)
    heads, neurons = EMPTY_BLOCKS[empty]
    masks = {UnitKind.HEADS: [_indicator(4, kept) for kept in heads],
             UnitKind.NEURONS: [_indicator(48, kept) for kept in neurons]}
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.3, min_heads_per_layer=0, min_neurons_per_layer=0)
    pruner = StructuredPruner(model, config)
    pruner.masks = masks
    pruner.attach()
    masked = logits(model, tiny_inputs)
    structure = pruner.compact()
    per_unit = queries_per_unit(arch)  # the 4 units of a GQA decoder are key/value groups of per_unit query heads
    assert structure.kept_heads == [[h for unit in kept for h in range(unit * per_unit, (unit + 1) * per_unit)]
                                    for kept in heads]
    assert structure.kept_neurons == [list(kept) for kept in neurons]
    assert [g.num_units for g in unit_groups(model, UnitKind.NEURONS)] == [len(kept) for kept in neurons]
    assert (logits(model, tiny_inputs) - masked).abs().max() < 1e-5
    model.save_pretrained(tmp_path / "pruned")
    assert torch.equal(logits(load_pruned(tmp_path / "pruned"), tiny_inputs), logits(model, tiny_inputs))
    export_dense(model, tmp_path / "dense")
    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    assert (logits(cls.from_pretrained(tmp_path / "dense").eval(), tiny_inputs) - masked).abs().max() < 1e-5
    report = sparsity_report(model)
    assert report.heads_kept == sum(len(kept) for kept in heads) * per_unit
    assert report.neurons_kept == sum(len(kept) for kept in neurons)
    assert report.params == sum(p.numel() for p in model.parameters())


def test_global_allocation_with_min_zero_can_empty_a_layer():
    scores = [torch.tensor([0.1, 0.2]), torch.tensor([5.0, 6.0])]
    from hfprune.pruning.masks import select_masks

    assert [m.tolist() for m in select_masks(scores, 0.5, "global", 0)] == [[0, 0], [1, 1]]
    assert [m.tolist() for m in select_masks(scores, 0.5, "global", 1)] == [[0, 1], [0, 1]]


def test_gpt2_generation_with_cache_matches_without_after_emptying_a_layers_blocks():
    model = tiny_model("gpt2", "causal_lm")
    compact(model, {UnitKind.HEADS: [torch.zeros(4), torch.ones(4)],
                    UnitKind.NEURONS: [torch.zeros(48), torch.ones(48)]})
    prompt = torch.tensor([[5, 17, 42]])
    with_cache = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
    without = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(with_cache, without)


def test_rounded_counts_are_multiples_and_keep_the_total():
    from hfprune.pruning.masks import rounded_counts

    counts = [377, 401, 350, 420, 390, 362]
    rounded = rounded_counts(counts, [1536] * 6, 16, 1)
    assert all(c % 16 == 0 for c in rounded)
    assert sum(rounded) == round(sum(counts) / 16) * 16 == 2304
    assert all(abs(r - c) < 16 for r, c in zip(rounded, counts, strict=True))
    # a layer's full size is allowed even if it is not a multiple; the minimum is rounded up to a step
    assert rounded_counts([12, 1], [12, 12], 8, 1) == [12, 8]
    assert rounded_counts([0, 5], [12, 12], 4, 0) == [0, 4]


@pytest.mark.parametrize("arch,task", CASES)
@pytest.mark.parametrize("allocation", ["global", "per_layer"])
def test_round_to_keeps_multiples_and_compacted_logits_equal_masked(arch, task, allocation, tiny_inputs):
    model = tiny_model(arch, task)
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.7, scoring="random", allocation=allocation, seed=5,
                           ffn_round_to=8, head_round_to=2)
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    masked = logits(model, tiny_inputs)
    pruner.compact()
    assert (logits(model, tiny_inputs) - masked).abs().max() < 1e-4
    for group in unit_groups(model, UnitKind.NEURONS):
        assert group.num_units % 8 == 0 and group.num_units > 0
    for group in unit_groups(model, UnitKind.HEADS):
        assert group.num_units % 2 == 0 and group.num_units > 0
    report = sparsity_report(model)
    # 30% of 2 x 48 neurons = 28.8 -> 32 (nearest multiple of 8); 50% of 2 x 4 heads (or key/value groups) = 4
    assert report.neurons_kept == 32
    assert report.heads_kept == 4 * queries_per_unit(arch)


@pytest.mark.parametrize("field", ["ffn_round_to", "head_round_to"])
def test_round_to_must_be_a_positive_int(field):
    with pytest.raises(ConfigError, match=field):
        PruningConfig(**{field: 0})
