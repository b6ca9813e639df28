"""Shared fixtures: tiny random models built from configs (no downloads) and offline settings."""

from __future__ import annotations

import os

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
