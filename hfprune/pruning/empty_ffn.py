"""A layer whose every FFN neuron was pruned: the FFN block reduces to its output projection's bias.

``nn.Linear`` already runs at zero width (its input projection yields no features, its output projection maps zero
features to its bias), so BERT-, DistilBERT- and Llama-style blocks need nothing. GPT-2's ``Conv1D`` reshapes its input
with ``-1`` over zero elements and fails, so compaction swaps an emptied ``Conv1D`` consumer for
``ZeroWidthConv1D``: the same class underneath (unit views, weight axes and state-dict keys are unchanged, so
``load_pruned`` and ``export_dense`` work as for any other width), whose forward returns the bias. Everything else of
the block (activation, dropout, residual add, layer norm) runs as before, so the compacted block computes exactly
what the masked one does, in training too.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from hfprune.pruning.architectures import get_architecture


class ZeroWidthConv1D(Conv1D):
    """A ``Conv1D`` with no input features: its output is its bias (or zeros), broadcast over the input's rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:-1], self.nf)
        if self.bias is None:
            return x.new_zeros(shape)
        return self.bias.to(x.dtype).expand(shape)


def _zero_width_conv1d(module: Conv1D) -> nn.Module:
    # the same object with another forward: unit groups, weight masks and hooks that hold the module stay valid
    module.__class__ = ZeroWidthConv1D
    return module


# consumer class -> how to make it run with zero input features; classes not listed (nn.Linear) already do
ZERO_WIDTH_CONSUMERS = {Conv1D: _zero_width_conv1d}


def empty_ffn(model: PreTrainedModel, layer: nn.Module) -> None:
    """Make ``layer``'s FFN output projection (all of whose input neurons are gone) runnable at zero width."""
    consumer = layer.get_submodule(get_architecture(model).ffn_consumer)
    convert = ZERO_WIDTH_CONSUMERS.get(type(consumer))
    if convert is not None:
        convert(consumer)
