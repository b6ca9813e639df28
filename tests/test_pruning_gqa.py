"""Grouped-query attention decoders (Llama, Qwen2, Mistral, Qwen3): query-head granularity, uniform allocation
with plain ``from_pretrained`` reloads, FLOPs from the weights, and generation with the KV cache after pruning."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_ARCHS, TINY_DECODERS, TINY_GQA, tiny_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from hfprune.errors import ConfigError
from hfprune.pruning import PruningConfig, StructuredPruner, export_dense, load_pruned, prune, sparsity_report
from hfprune.pruning.stats import model_flops
from hfprune.pruning.units import UnitKind, unit_groups

GQA = [arch for arch in TINY_DECODERS if TINY_GQA[arch][0] > TINY_GQA[arch][1]]


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def heads_per_group(structure, arch: str) -> list[list[int]]:
    """Per layer, the number of kept query heads in each kept key/value group (dense numbering)."""
    per_kv = TINY_GQA[arch][0] // TINY_GQA[arch][1]
    counts = []
    for kept in structure.kept_heads:
        groups = torch.tensor(kept, dtype=torch.long) // per_kv
        counts.append(torch.unique(groups, return_counts=True)[1].tolist())
    return counts


@pytest.mark.parametrize("arch", GQA)
@pytest.mark.parametrize("allocation", ["global", "per_layer", "uniform"])
def test_query_granularity_keeps_groups_equal_and_compacts_exactly(arch, allocation, tiny_inputs, tmp_path):
    model = tiny_model(arch, "causal_lm")
    config = PruningConfig(head_sparsity=0.4, ffn_sparsity=0.3, scoring="random", allocation=allocation, seed=7,
                           head_granularity="query")
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    masked = logits(model, tiny_inputs)
    structure = pruner.compact()
    assert (logits(model, tiny_inputs) - masked).abs().max() < 1e-4
    counts = heads_per_group(structure, arch)
    assert all(len(set(layer)) == 1 for layer in counts)  # every kept group keeps as many query heads
    heads, kv_heads = TINY_GQA[arch][:2]
    kept = sum(len(k) for k in structure.kept_heads)
    # the count groups x heads-per-group nearest to what per-layer selection keeps (60% of the heads) is kept
    per_layer_target = heads - round(0.4 * heads)
    best = min(abs(g * q - per_layer_target) for g in range(1, kv_heads + 1) for q in range(1, heads // kv_heads + 1))
    if allocation != "global":
        assert all(abs(len(k) - per_layer_target) == best for k in structure.kept_heads)
    assert 0 < kept < 2 * heads
    assert sparsity_report(model).heads_kept == kept
    model.save_pretrained(tmp_path / "pruned")
    assert torch.equal(logits(load_pruned(tmp_path / "pruned"), tiny_inputs), logits(model, tiny_inputs))
    export_dense(model, tmp_path / "dense")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "dense").eval()
    assert (logits(plain, tiny_inputs) - masked).abs().max() < 1e-5


def test_query_granularity_prunes_single_query_heads_and_whole_groups():
    model = tiny_model("qwen2", "causal_lm")  # 4 key/value groups of 3 query heads
    scores = [torch.arange(12.0), torch.tensor([9.0, 8, 7, 0, 0, 0, 0, 0, 0, 5, 6, 4])]
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=0.5, scoring="random", head_granularity="query",
                                                   allocation="per_layer"))
    from hfprune.pruning.gqa import equal_group_masks

    masks = equal_group_masks([torch.tensor([0.0] * 6 + [1] * 6)] * 2, scores, pruner.groups[UnitKind.HEADS])
    # layer 0: 6 heads kept as 2 groups x 3 (the two best groups) beats 3 x 2 and 6 x 1
    assert torch.nonzero(masks[0]).flatten().tolist() == [6, 7, 8, 9, 10, 11]
    # layer 1: two whole groups (0 and 3: 24 + 15) beat 3 groups x 2 heads (17 + 11 + 0)
    assert torch.nonzero(masks[1]).flatten().tolist() == [0, 1, 2, 9, 10, 11]
    masks = equal_group_masks([torch.tensor([0.0] * 8 + [1] * 4)] * 2, scores, pruner.groups[UnitKind.HEADS])
    # 4 heads: 4 groups x 1 (best head of each) or 2 x 2; layer 1 prefers 2 x 2 (9 + 8 + 6 + 5 = 28 > 9+0+0+6)
    assert torch.nonzero(masks[1]).flatten().tolist() == [0, 1, 9, 10]


def test_weight_pruning_with_query_granularity_is_refused():
    with pytest.raises(ConfigError, match="head_granularity"):
        StructuredPruner(tiny_model("qwen2", "causal_lm"),
                         PruningConfig(head_sparsity=0.5, weight_sparsity=0.5, head_granularity="query"))


@pytest.mark.parametrize("field,value", [("head_granularity", "kv"), ("allocation", "uniformly")])
def test_config_rejects_bad_granularity_and_allocation(field, value):
    with pytest.raises(ConfigError, match=field):
        PruningConfig(**{field: value})


def test_uniform_allocation_needs_a_head_per_layer():
    with pytest.raises(ConfigError, match="min_heads_per_layer"):
        PruningConfig(allocation="uniform", min_heads_per_layer=0)


@pytest.mark.parametrize("arch", TINY_DECODERS)
@pytest.mark.parametrize("granularity", ["group", "query"])
def test_uniform_allocation_saves_a_standard_checkpoint(arch, granularity, tiny_inputs, tmp_path):
    model = tiny_model(arch, "causal_lm")
    structure = prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude",
                                           allocation="uniform", head_granularity=granularity))
    expected = logits(model, tiny_inputs)
    model.save_pretrained(tmp_path / "pruned")
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    heads, kv_heads, head_dim, _ = TINY_GQA[arch]
    kept_heads = len(structure.kept_heads[0])
    kept_kv = len({h // (heads // kv_heads) for h in structure.kept_heads[0]})
    assert (saved["num_attention_heads"], saved["num_key_value_heads"]) == (kept_heads, kept_kv)
    assert kept_heads < heads and saved["head_dim"] == head_dim and saved["intermediate_size"] == 24
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()  # no hfprune involved
    assert torch.equal(logits(plain, tiny_inputs), expected)
    assert torch.equal(logits(load_pruned(tmp_path / "pruned"), tiny_inputs), expected)
    export_dense(model, tmp_path / "dense")
    dense = AutoModelForCausalLM.from_pretrained(tmp_path / "dense").eval()
    assert dense.config.num_attention_heads == heads and dense.config.intermediate_size == 48
    assert (logits(dense, tiny_inputs) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_uniform_ffn_pruning_of_encoders_saves_a_standard_checkpoint(arch, tiny_inputs, tmp_path):
    model = tiny_model(arch)
    prune(model, PruningConfig(ffn_sparsity=0.5, scoring="magnitude", allocation="uniform"))
    expected = logits(model, tiny_inputs)
    model.save_pretrained(tmp_path / "pruned")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned").eval()
    assert torch.equal(logits(plain, tiny_inputs), expected)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in model.parameters())


def test_non_uniform_widths_keep_the_dense_config(tmp_path):
    model = tiny_model("llama", "causal_lm")
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(10)  # global magnitude takes more neurons from layer 1
    prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    assert len({g.num_units for g in unit_groups(model, UnitKind.NEURONS)}) == 2
    assert model.config.intermediate_size == 48  # load_pruned rebuilds the per-layer shapes


@pytest.mark.parametrize("arch", TINY_DECODERS)
def test_flops_and_params_come_from_the_weights(arch):
    model = tiny_model(arch, "causal_lm")
    heads, kv_heads, head_dim, hidden = TINY_GQA[arch]
    seq, layers, ffn = 128, 2, 48
    attention = 2 * seq * hidden * head_dim * (2 * heads + 2 * kv_heads) + 4 * seq * seq * heads * head_dim
    dense_flops = layers * (attention + 3 * 2 * seq * hidden * ffn)  # gate, up and down projections
    assert model_flops(model, seq) == sparsity_report(model, seq).flops == dense_flops
    prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude", allocation="uniform",
                               head_granularity="query"))
    report = sparsity_report(model, seq)
    # a model built by transformers from the rewritten config has exactly the pruned shapes and cost
    rebuilt = AutoModelForCausalLM.from_config(model.config)
    assert report.flops == model_flops(model, seq) == model_flops(rebuilt, seq) < dense_flops
    assert report.flops_dense == dense_flops
    assert report.params == sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in rebuilt.parameters())
    assert report.params_dense == sum(p.numel() for p in tiny_model(arch, "causal_lm").parameters())


@pytest.mark.parametrize("arch", TINY_DECODERS)
@pytest.mark.parametrize("allocation,granularity,min_heads", [
    ("global", "group", 0), ("per_layer", "query", 1), ("uniform", "query", 1),
])
def test_generation_with_cache_matches_without(arch, allocation, granularity, min_heads):
    model = tiny_model(arch, "causal_lm")
    with torch.no_grad():  # make layer 0's attention the weakest so global pruning with min 0 can empty it
        model.model.layers[0].self_attn.q_proj.weight.mul_(0.01)
    prune(model, PruningConfig(head_sparsity=0.6, ffn_sparsity=0.5, scoring="magnitude", allocation=allocation,
                               head_granularity=granularity, min_heads_per_layer=min_heads))
    prompt = torch.tensor([[5, 17, 42, 7]])
    with_cache = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
    without = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=0)
    assert with_cache.shape == (1, 12)
    assert torch.equal(with_cache, without)

