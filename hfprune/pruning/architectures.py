"""The one table of architecture knowledge: where each model type keeps its attention heads and FFN neurons.

Adding an architecture is one ``ArchitectureSpec`` entry here plus a parametrized test. Module paths are relative
to one transformer layer; whether a module is a ``nn.Linear`` or GPT-2's transposed ``Conv1D`` is detected at run
time, and unit counts, parameters and FLOPs are read off the weights' shapes (see ``units``), so the same entry
drives scoring, masking, compaction and counting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from transformers import PretrainedConfig, PreTrainedModel

from hfprune.errors import UnsupportedModelError


@dataclass(frozen=True)
class ArchitectureSpec:
    """Module names and config fields of one ``config.model_type``."""

    layers: str
    """Path of the ``nn.ModuleList`` of transformer layers, relative to ``model.base_model``."""
    head_producers: tuple[str, ...]
    """Modules whose *output* features are grouped by query head (query, and key/value where they have as many
    heads)."""
    head_consumer: str
    """The attention output projection: its *input* features are grouped by head."""
    ffn_producers: tuple[str, ...]
    """FFN input projections (one, or gate and up for SwiGLU): their output features are the FFN neurons."""
    ffn_consumer: str
    """FFN output projection: its input features are the FFN neurons."""
    attention: str
    """The module whose attributes record its head count (updated by compaction)."""
    head_count_attrs: tuple[tuple[str, str], ...]
    """Attributes of ``attention`` to rewrite after compaction: (name, "heads" | "width" | "groups"), width = heads *
    head_dim, groups = query heads per key/value head."""
    num_heads_field: str
    hidden_size_field: str
    ffn_size_field: str
    qkv_blocks: int = 1
    """How many head-grouped blocks one producer holds: 3 for GPT-2's fused ``c_attn`` (q, k and v side by side)."""
    kv_producers: tuple[str, ...] = ()
    """Key/value projections with their own head count (grouped-query attention): each key/value head is read by
    a block of consecutive query heads."""
    num_kv_heads_field: str | None = None
    head_dim_field: str | None = None
    """Config field holding ``head_dim`` explicitly. Only then can a config express pruned head counts (otherwise
    transformers derives head_dim = hidden / heads), so only then are they rewritten when all layers agree."""

    def ffn_size(self, config: PretrainedConfig) -> int:
        value = getattr(config, self.ffn_size_field, None)
        # GPT-2 leaves n_inner unset to mean 4 * n_embd
        return int(value) if value is not None else 4 * int(getattr(config, self.hidden_size_field))

    def num_heads(self, config: PretrainedConfig) -> int:
        return int(getattr(config, self.num_heads_field))

    def num_kv_heads(self, config: PretrainedConfig) -> int:
        value = getattr(config, self.num_kv_heads_field, None) if self.num_kv_heads_field else None
        return int(value) if value is not None else self.num_heads(config)

    def head_dim(self, config: PretrainedConfig) -> int:
        value = getattr(config, self.head_dim_field, None) if self.head_dim_field else None
        if value is not None:
            return int(value)
        return int(getattr(config, self.hidden_size_field)) // self.num_heads(config)


_BERT_LIKE = ArchitectureSpec(
    layers="encoder.layer",
    head_producers=("attention.self.query", "attention.self.key", "attention.self.value"),
    head_consumer="attention.output.dense",
    ffn_producers=("intermediate.dense",),
    ffn_consumer="output.dense",
    attention="attention.self",
    head_count_attrs=(("num_attention_heads", "heads"), ("all_head_size", "width")),
    num_heads_field="num_attention_heads",
    hidden_size_field="hidden_size",
    ffn_size_field="intermediate_size",
)

# Llama and the decoders that copy its layout: grouped-query attention (separate k/v projections with
# num_key_value_heads heads), SwiGLU / GeGLU FFN (gate and up rows, down columns), explicit head_dim. RoPE and the
# per-head-dim q/k norms of Qwen3 act within a head, so slicing whole heads leaves them untouched.
_LLAMA_LIKE = ArchitectureSpec(
    layers="layers",
    head_producers=("self_attn.q_proj",),
    kv_producers=("self_attn.k_proj", "self_attn.v_proj"),
    head_consumer="self_attn.o_proj",
    ffn_producers=("mlp.gate_proj", "mlp.up_proj"),
    ffn_consumer="mlp.down_proj",
    attention="self_attn",
    head_count_attrs=(("num_key_value_groups", "groups"),),
    num_heads_field="num_attention_heads",
    num_kv_heads_field="num_key_value_heads",
    head_dim_field="head_dim",
    hidden_size_field="hidden_size",
    ffn_size_field="intermediate_size",
)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "distilbert": ArchitectureSpec(
        layers="transformer.layer",
        head_producers=("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        head_consumer="attention.out_lin",
        ffn_producers=("ffn.lin1",),
        ffn_consumer="ffn.lin2",
        attention="attention",
        head_count_attrs=(("n_heads", "heads"),),
        num_heads_field="n_heads",
        hidden_size_field="dim",
        ffn_size_field="hidden_dim",
    ),
    "gpt2": ArchitectureSpec(
        layers="h",
        head_producers=("attn.c_attn",),
        head_consumer="attn.c_proj",
        ffn_producers=("mlp.c_fc",),
        ffn_consumer="mlp.c_proj",
        attention="attn",
        head_count_attrs=(("num_heads", "heads"), ("split_size", "width")),
        num_heads_field="n_head",
        hidden_size_field="n_embd",
        ffn_size_field="n_inner",
        qkv_blocks=3,
    ),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
}


def get_architecture(model_or_config: PreTrainedModel | PretrainedConfig) -> ArchitectureSpec:
    """The table entry for a model or config; an unsupported type is an error listing the supported ones."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported for pruning; supported: {sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[model_type]


def transformer_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The model's list of transformer layers, found through the architecture table."""
    spec = get_architecture(model)
    return model.base_model.get_submodule(spec.layers)
