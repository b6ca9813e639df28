"""Whole-layer removal (issue #21): block influence, masked == removed == reloaded == exported logits for every
architecture, KV-cache generation after renumbering, resume and composition."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_DECODERS, tiny_model
from helpers import CASES, logits
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning import PruningConfig, StructuredPruner, export_dense, load_pruned, prune, sparsity_report
from hfprune.pruning.architectures import transformer_layers
from hfprune.pruning.layers import remove_layers
from hfprune.pruning.units import UnitKind, unit_groups


def batches(count: int = 2):
    generator = torch.Generator().manual_seed(5)
    for _ in range(count):
        ids = torch.randint(3, 99, (4, 9), generator=generator)
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1, 0])}


@pytest.mark.parametrize("arch,task", CASES)
def test_masked_layer_equals_removed_reloaded_and_exported(arch, task, tiny_inputs, tmp_path):
    model = tiny_model(arch, task)
    dense = logits(model, tiny_inputs)
    pruner = StructuredPruner(model, PruningConfig(layer_sparsity=0.5, ffn_sparsity=0.25, scoring="magnitude"))
    pruner.masks[UnitKind.NEURONS] = [torch.ones(48), (torch.arange(48) % 4 > 0).float()]
    pruner.layers.mask = torch.tensor([0.0, 1.0])  # layer 0 goes: layer 1 becomes layer 0 (KV-cache slot 0)
    pruner.attach()
    masked = logits(model, tiny_inputs)
    assert not torch.allclose(masked, dense)
    masked_report = sparsity_report(model)
    structure = pruner.compact()
    assert len(transformer_layers(model)) == model.config.num_hidden_layers == 1
    # no stale layer count left on a module (DistilBERT's Transformer keeps its own n_layers)
    assert all(m.n_layers == 1 for m in model.modules() if isinstance(getattr(m, "n_layers", None), int))
    assert structure.kept_layers == [1] and structure.dense_num_layers == 2
    assert [g.num_units for g in unit_groups(model, UnitKind.NEURONS)] == [36]
    torch.testing.assert_close(logits(model, tiny_inputs), masked, rtol=0, atol=1e-5)
    report = sparsity_report(model)
    assert report.neurons_total == 96 and report.neurons_kept == 36
    assert report.params_dense == sum(p.numel() for p in tiny_model(arch, task).parameters())
    assert report.params == sum(p.numel() for p in model.parameters())
    counted = ("heads_kept", "heads_total", "neurons_kept", "neurons_total", "params", "params_dense", "flops",
               "flops_dense")  # the masked layer counted as removed, exactly as after removal
    assert [getattr(report, f) for f in counted] == [getattr(masked_report, f) for f in counted]
    model.save_pretrained(tmp_path / "pruned")
    assert torch.equal(logits(load_pruned(tmp_path / "pruned"), tiny_inputs), logits(model, tiny_inputs))
    export_dense(model, tmp_path / "dense")
    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    plain = cls.from_pretrained(tmp_path / "dense").eval()
    assert plain.config.num_hidden_layers == 1
    torch.testing.assert_close(logits(plain, tiny_inputs), masked, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", *TINY_DECODERS])
def test_generation_with_cache_matches_without_after_removing_a_layer(arch):
    model = tiny_model(arch, "causal_lm")
    remove_layers(model, [1])
    if hasattr(model.config, "layer_types"):
        assert len(model.config.layer_types) == 1
    assert [m.layer_idx for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)] != []
    assert {m.layer_idx for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)} == {0}
    prompt = torch.tensor([[5, 17, 42]])
    with_cache = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
    without = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(with_cache, without)


def test_block_influence_removes_the_layer_that_changes_the_hidden_state_least():
    model = tiny_model("llama", "classification")
    layer = transformer_layers(model)[0]
    with torch.no_grad():  # pre-norm: with no attention or FFN output, layer 0 returns its input (influence 0)
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    structure = prune(model, PruningConfig(layer_sparsity=0.5, scoring="magnitude"), dataloader=batches())
    assert structure.kept_layers == [1]


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_block_influence_counts_real_tokens_only(arch):
    """Two sequences padded into one batch give the influence they give one at a time: padding (attention_mask 0)
    neither adds to a layer's influence nor to its token count."""
    from hfprune.pruning.layers import LayerDropper

    model = tiny_model(arch, "classification").eval()
    ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # the second sequence has 5 real tokens, right-padded

    def measured(batches):
        dropper = LayerDropper(model, 0.5)
        dropper.attach()
        with torch.enable_grad():
            for batch in batches:
                model(**batch)
        dropper.detach()
        return dropper.influence, dropper.tokens

    padded = measured([{"input_ids": ids, "attention_mask": mask}])
    alone = measured([{"input_ids": ids[:1], "attention_mask": mask[:1]},
                      {"input_ids": ids[1:, :5], "attention_mask": mask[1:, :5]}])
    assert padded[1].tolist() == alone[1].tolist() == [14.0] * len(transformer_layers(model))
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-6)


def test_layer_sparsity_needs_data_and_excludes_weights():
    with pytest.raises(HfpruneError, match="layer_sparsity 0.5 needs a calibration dataloader"):
        prune(tiny_model("bert"), PruningConfig(layer_sparsity=0.5, scoring="magnitude"))
    with pytest.raises(ConfigError, match=r"^PruningConfig\.weight_sparsity: with layer_sparsity"):
        PruningConfig(layer_sparsity=0.5, weight_sparsity=0.5, weight_method="magnitude")
    with pytest.raises(ConfigError, match=r"^PruningConfig\.layer_sparsity: expected"):
        PruningConfig(layer_sparsity=1.0)
    with pytest.raises(ConfigError, match=r"^PruningConfig\.layer_sparsity: 0.2 of the 2 layers .* removes none"):
        StructuredPruner(tiny_model("bert"), PruningConfig(layer_sparsity=0.2))
    with pytest.raises(ConfigError, match="scale_attn_by_inverse_layer_idx"):
        StructuredPruner(tiny_model("gpt2", scale_attn_by_inverse_layer_idx=True), PruningConfig(layer_sparsity=0.5))


def test_resumed_state_keeps_influence_and_masks():
    model = tiny_model("bert", num_hidden_layers=3)
    config = PruningConfig(layer_sparsity=0.34, scoring="magnitude", warmup_ratio=0.0, cooldown_ratio=0.0)
    first = StructuredPruner(model, config)
    for batch in batches():
        model(**batch).loss.backward()
    first.update_masks(10, 10)
    assert int(first.layers.mask.sum()) == 2
    state = json.loads(json.dumps(first.state_dict()))
    first.detach()
    second = StructuredPruner(model, config)
    second.load_state_dict(state)
    assert torch.equal(second.layers.mask, first.layers.mask)
    assert torch.equal(second.layers.scores(), first.layers.scores())
    with pytest.raises(HfpruneError, match="no layer scores"):
        StructuredPruner(model, config).load_state_dict({**state, "layers": None})


def test_removing_layers_twice_composes_dense_numbers(tiny_inputs):
    model = tiny_model("bert", num_hidden_layers=3)
    remove_layers(model, [0, 2])
    structure = remove_layers(model, [1])
    assert structure.kept_layers == [2] and structure.dense_num_layers == 3
    assert model.config.num_hidden_layers == 1 and len(model.config.hfprune_structure["kept_heads"]) == 1
    with pytest.raises(HfpruneError, match=r"^remove_layers: expected sorted unique layer indices in \[0, 1\)"):
        remove_layers(model, [])


def _trainer_run(output_dir, resume=None, stop_at=None):
    from pruning_trainer_utils import StopAt, pruning_callback, synthetic_classification, training_args
    from transformers import Trainer

    from hfprune import MovementPruningCallback

    config = PruningConfig(layer_sparsity=0.34, ffn_sparsity=0.5, min_neurons_per_layer=0, mask_update_interval=3,
                           compact_on_train_end=False)
    callbacks = [MovementPruningCallback(config)] + ([StopAt(stop_at)] if stop_at else [])
    args = training_args(output_dir, max_steps=24, save_strategy="steps", save_steps=5)
    trainer = Trainer(model=tiny_model("bert", num_hidden_layers=3), args=args,
                      train_dataset=synthetic_classification(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return pruning_callback(trainer).pruner


def test_resumed_trainer_run_removes_the_same_layers(tmp_path):
    uninterrupted = _trainer_run(tmp_path / "a")
    _trainer_run(tmp_path / "b", stop_at=13)  # killed after step 13; the last checkpoint is step 10
    resumed = _trainer_run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-10"))
    assert int(uninterrupted.layers.mask.sum()) == 2
    assert torch.equal(resumed.layers.mask, uninterrupted.layers.mask)
    torch.testing.assert_close(resumed.layers.influence, uninterrupted.layers.influence, rtol=1e-5, atol=0)
    assert torch.equal(resumed.layers.tokens, uninterrupted.layers.tokens)

