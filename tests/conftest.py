"""Shared fixtures: tiny random models built from configs (no downloads) and offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_ARCHS = ("bert", "roberta", "distilbert", "gpt2")
# decoders with grouped-query attention: (query heads, key/value heads, head_dim, hidden); 4 key/value groups of
# 1, 3, 4 and 2 query heads; head_dim differs from hidden / heads for mistral and qwen3 (an explicit config field)
TINY_GQA = {"llama": (4, 4, 8, 32), "qwen2": (12, 4, 4, 48), "mistral": (16, 4, 4, 32), "qwen3": (8, 4, 8, 32)}
TINY_DECODERS = tuple(TINY_GQA)


def tiny_config(model_type: str, num_labels: int = 2, **overrides):
    """A tiny config of ``model_type``: 2 layers, 4 heads of size 8 (4 key/value groups for the ``TINY_GQA``
    decoders), FFN width 48."""
    from transformers import AutoConfig, BertConfig, DistilBertConfig, GPT2Config, RobertaConfig

    if model_type == "bert":
        cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, max_position_embeddings=64, num_labels=num_labels)
    elif model_type == "roberta":
        cfg = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=48, max_position_embeddings=70, num_labels=num_labels,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2)
    elif model_type == "distilbert":
        cfg = DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                               max_position_embeddings=64, num_labels=num_labels)
    elif model_type == "gpt2":
        cfg = GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64,
                         num_labels=num_labels, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    elif model_type in TINY_GQA:
        heads, kv_heads, head_dim, hidden = TINY_GQA[model_type]
        cfg = AutoConfig.for_model(model_type, vocab_size=99, hidden_size=hidden, num_hidden_layers=2,
                                   num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                                   intermediate_size=48, max_position_embeddings=64, num_labels=num_labels,
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    else:
        raise ValueError(model_type)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    # dropout off so that two forward passes of the same model agree exactly
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                 "resid_pdrop", "embd_pdrop", "attn_pdrop", "seq_classif_dropout", "summary_first_dropout"):
        if hasattr(cfg, name):
            setattr(cfg, name, 0.0)
    return cfg


def tiny_model(model_type: str, task: str = "classification", seed: int = 0, **overrides):
    """A tiny random model: sequence classification, or a causal LM (gpt2 and the decoders) with task='causal_lm'."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    cfg = tiny_config(model_type, **overrides)
    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    return cls.from_config(cfg).eval()


@pytest.fixture(params=TINY_ARCHS)
def tiny_arch(request) -> str:
    return request.param


@pytest.fixture
def tiny_inputs():
    """A fixed batch of token ids (batch 3, length 10) with right padding in the last row."""
    import torch

    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 99, (3, 10), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 7:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.fixture(scope="session")
def finetuned_minilm_dir(tmp_path_factory):
    """The real MiniLM fine-tuned on 3,000 SST-2 sentences (2 epochs, max length 64), shared by integration tests.

    Dev accuracy is about 0.83 (measured 0.829): enough for pruning, attacks and loyalty to be meaningful. One
    thread: gradients differ in the last bits between thread counts, and the accuracy comparisons built on this
    model were measured with one.
    """
    from hfprune.training import FinetuneConfig, finetune_classifier

    out = tmp_path_factory.mktemp("minilm-sst2") / "model"
    finetune_classifier(FinetuneConfig(train_samples=3000, epochs=2.0, max_length=64, batch_size=32, seed=0,
                                       threads=1, output_dir=str(out)))
    return out


# ------------------------------------------------------------- fixtures shared by several files (see helpers.py)
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT classifier saved with MiniLM's tokenizer (so SST-2 sentences tokenise)."""
    from helpers import minilm_tokenizer, tiny_bert

    target = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    tiny_bert().save_pretrained(target)
    minilm_tokenizer().save_pretrained(target)
    return target


@pytest.fixture
def counted(monkeypatch):
    """Count dense trainings, prunings and attacks; attacks return constructed results (ASR grows with the share of
    heads removed: 1/4 dense, 4/4 at half the heads)."""
    import numpy as np
    from pruning_trainer_utils import count_calls

    from hfprune.audit.summaries import summarize_attack_log, summarize_loyalty
    from hfprune.pipeline import stages

    calls = count_calls(monkeypatch, stages, "train_dense", "prune_and_distill")
    calls["attack"] = 0

    def robustness_audit(plan, target, reference, out, dataset=None):
        from hfprune.pruning.stats import sparsity_report

        calls["attack"] += 1
        flipped = min(4, 1 + round(6 * sparsity_report(target.model).head_sparsity))  # 1 dense, 4 at half the heads
        outcomes = ["successful"] * flipped + ["failed"] * (4 - flipped) + ["skipped"]
        result = summarize_attack_log(outcomes, np.zeros(5), np.ones(5), model_name=target.name,
                                      sparsity=target.sparsity, recipe="deepwordbug", n_resamples=0)
        loyalty = None if reference is None else summarize_loyalty(
            np.eye(2)[[0, 1, 1]], np.eye(2)[[0, 1, 0]], model_name=target.name, sparsity=target.sparsity,
            reference_name="dense", n_resamples=0)
        return [result], loyalty

    monkeypatch.setattr("hfprune.audit.model_audit.robustness_audit", robustness_audit)
    return calls


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory) -> Path:
    """A saved pruned tiny BERT with the ``hfprune_results.json`` its card reads."""
    from helpers import tiny_pruned_model_dir, write_results

    model_dir = tiny_pruned_model_dir(tmp_path_factory.mktemp("pruned"))
    write_results(model_dir)
    return model_dir


@pytest.fixture
def hub(monkeypatch):
    """A loopback Hub on 127.0.0.1 with HF_ENDPOINT pointing at it (xet storage off: it has no CAS server)."""
    import threading
    from http.server import ThreadingHTTPServer

    import huggingface_hub.constants
    from helpers import TOKEN, FakeHub, make_handler

    state, endpoint = FakeHub(), [""]
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, endpoint))
    endpoint[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", endpoint[0])
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield state
    server.shutdown()
    server.server_close()
