"""A layer whose every head was pruned: the attention block reduces to its output projection's bias.

transformers' attention modules cannot run with zero heads (they reshape with ``-1`` over zero elements), so
compaction swaps the emptied module for ``EmptyAttention``. It keeps the (now zero-width) producer and consumer
modules under their original names, so state-dict keys, unit views and ``load_pruned`` work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from transformers import PreTrainedModel

from hfprune.pruning.architectures import get_architecture


class EmptyAttention(nn.Module):
    """Returns zero-width attention output (then the consumer's bias, where the consumer lives inside)."""

    def __init__(self, children: dict[str, nn.Module], consumer_name: str | None, head_dim: int,
                 layer_idx: int | None) -> None:
        super().__init__()
        for name, module in children.items():
            self.add_module(name, module)
        self.consumer_name = consumer_name
        self.head_dim = head_dim
        self.layer_idx = layer_idx

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        batch, length = hidden_states.shape[:2]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None and self.layer_idx is not None:
            # keep the KV cache's per-layer lengths consistent during generation
            empty = hidden_states.new_zeros(batch, 0, length, self.head_dim)
            cache.update(empty, empty, self.layer_idx)
        if self.consumer_name is None:  # the output projection lives outside and maps zero width to its bias
            return hidden_states.new_zeros(batch, length, 0), None
        # a zero-width projection yields its bias (GPT-2's Conv1D cannot even be called on zero width)
        consumer = getattr(self, self.consumer_name)
        if consumer.bias is None:
            width = consumer.nf if hasattr(consumer, "nf") else consumer.out_features
            return hidden_states.new_zeros(batch, length, width), None
        return consumer.bias.to(hidden_states.dtype).expand(batch, length, -1), None


def empty_attention(model: PreTrainedModel, layer: nn.Module) -> None:
    """Replace ``layer``'s attention module (all of whose heads are gone) by ``EmptyAttention``."""
    spec = get_architecture(model)
    prefix = spec.attention + "."
    inside = [p for p in (*spec.head_producers, *spec.kv_producers, spec.head_consumer) if p.startswith(prefix)]
    attention = layer.get_submodule(spec.attention)
    children = {path[len(prefix):]: layer.get_submodule(path) for path in inside}
    consumer = spec.head_consumer[len(prefix):] if spec.head_consumer.startswith(prefix) else None
    replacement = EmptyAttention(children, consumer, spec.head_dim(model.config), getattr(attention, "layer_idx", None))
    parent_path, _, name = spec.attention.rpartition(".")
    setattr(layer.get_submodule(parent_path) if parent_path else layer, name, replacement)
