"""Tiny model folders and recipes shared by the hardening tests (a module, so test files never import each other)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_dense_dir(root: Path) -> Path:
    """A 2-layer, 4-head BERT classifier with the MiniLM tokenizer saved in ``root/dense``."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hfprune.models import resolve_model

    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=128, num_labels=2)).save_pretrained(root / "dense")
    AutoTokenizer.from_pretrained(resolve_model("minilm")).save_pretrained(root / "dense")
    return root / "dense"


def tiny_recipe(model_dir: Path, out: Path) -> dict:
    """A recipe that fine-tunes and prunes ``model_dir`` on 16 SST-2 examples into ``out`` in seconds."""
    return {
        "name": "trust", "model": {"name": str(model_dir)},
        "data": {"dataset": "glue/sst2", "train_samples": 16, "eval_samples": 16, "max_length": 16},
        "training": {"dense_epochs": 1, "prune_epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "threads": 1},
        "pruning": {"head_sparsity": 0.5, "ffn_sparsity": 0.5, "scoring": "magnitude"},
        "audits": {"robustness": {"enabled": False}, "privacy": {"n_nonmembers": 16, "n_resamples": 0},
                   "latency_rounds": 0},
        "output": {"dir": str(out)},
    }


def tiny_pruned_dir(root: Path) -> Path:
    """``tiny_dense_dir`` with half its heads and FFN neurons pruned (magnitude), saved by ``save_pruned`` in
    ``root/pruned``."""
    import hfprune
    from hfprune.models import load_model_for_task, load_tokenizer

    dense = tiny_dense_dir(root)
    model = load_model_for_task(dense).eval()
    config = hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude")
    hfprune.prune(model, config)
    return hfprune.save_pruned(model, root / "pruned", pruning_config=config, processing_class=load_tokenizer(dense))


def model_loaders() -> dict[str, object]:
    """Every way hfprune reads a model folder, by name (each takes the folder)."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.models.checks import check_model_source
    from hfprune.pruning.serialization import load_pruned

    return {"load_pruned": load_pruned, "load_model_dir": load_model_dir, "load_model_for_task": load_model_for_task,
            "load_tokenizer": load_tokenizer, "check_model_source": lambda path: check_model_source("model.name", path)}
