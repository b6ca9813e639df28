"""Whole transformer layers: scored by block influence, masked, then removed from the model (issue #21).

**Block influence** (Men et al. 2024, ShortGPT): a layer's score is 1 - cos(its input, its output) over the real
tokens of the training (or calibration) batches (the ``attention_mask`` leaves padding out), averaged; the layers
that change the hidden state least go first. Why this and not the units' summed scores: a layer's heads and neurons
can all score well while its residual update is small beside the hidden state it is added to (what removing the
layer costs is that update, not the units' sum), head and neuron scores live on different scales that a sum would
have to weigh, and the units' scores of the latency and magnitude scorers say nothing about data. Block influence is
one number per layer on one scale, in encoders (post-norm: the output is the normalised sum) and decoders (pre-norm:
the output is the residual stream) alike, and it reads only forward passes the run makes anyway (no extra pass, any
scorer). It needs data: one-shot pruning with ``layer_sparsity`` needs a calibration dataloader.

A masked layer passes its input through unchanged (a forward hook replaces its output hidden states by its input), so
the masked model computes exactly what the model with the layer removed does; its influence is still measured on its
real output, so a masked layer can come back at a later update. ``remove_layers`` then drops the masked layers from
the module list and the config (``num_hidden_layers``, ``layer_types`` where the config has them) and renumbers the
remaining layers' ``layer_idx`` (KV-cache slots), so the saved model is a plain checkpoint with fewer layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.architectures import get_architecture, transformer_layers
from hfprune.pruning.distributed import mean_across_processes
from hfprune.pruning.structure import PrunedStructure

# config fields holding one entry per layer, sliced along with the layers
PER_LAYER_CONFIG_FIELDS = ("layer_types",)


def _hidden_in(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(output: Any, hidden: torch.Tensor) -> Any:
    """``output`` (a layer's: a tensor, or a tuple whose first item is the hidden states) with ``hidden`` instead."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class LayerDropper:
    """Block influence of every layer, and a keep-mask of layers applied by forward hooks."""

    def __init__(self, model: PreTrainedModel, target: float) -> None:
        self.model = model
        self.target = target
        count = len(transformer_layers(model))
        self.influence = torch.zeros(count, dtype=torch.float64)  # summed (1 - cos) over tokens
        self.tokens = torch.zeros(count, dtype=torch.float64)
        self.mask = torch.ones(count)
        self.sparsity = 0.0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._tokens_mask: torch.Tensor | None = None  # the current batch's attention_mask: which tokens are real

    def scores(self) -> torch.Tensor:
        """Mean block influence per layer, averaged over processes (every rank then removes the same layers)."""
        mean = self.influence / self.tokens.clamp(min=1)
        return mean_across_processes(mean.float())

    def update(self, sparsity: float) -> None:
        """Mask the ``round(sparsity * layers)`` layers of lowest influence (ties by index; at least one layer
        stays)."""
        count = self.mask.numel()
        removed = layers_removed(sparsity, count)
        if removed and not bool((self.tokens > 0).all()):
            raise HfpruneError("layer_sparsity: no forward pass with gradients has measured every layer's block "
                               "influence yet (one-shot pruning needs a calibration dataloader)")
        order = torch.sort(self.scores(), stable=True).indices
        self.mask = torch.ones(count)
        self.mask[order[:removed]] = 0
        self.sparsity = sparsity

    def attach(self) -> None:
        self.detach()
        self._handles.append(self.model.register_forward_pre_hook(self._remember_mask, with_kwargs=True))
        for index, layer in enumerate(transformer_layers(self.model)):
            self._handles.append(layer.register_forward_hook(self._hook(index), with_kwargs=True))

    def _remember_mask(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        """Keep the batch's 2-D ``attention_mask`` (a model call's keyword, as the Trainer passes it): the layers
        see only hidden states, and padding tokens must not count in a layer's influence."""
        mask = kwargs.get("attention_mask")
        self._tokens_mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
            hidden = _hidden_in(args, kwargs)
            out = output[0] if isinstance(output, tuple) else output
            if torch.is_grad_enabled():  # training and calibration passes; evaluation runs without gradients
                with torch.no_grad():
                    cos = F.cosine_similarity(hidden.detach().float(), out.detach().float(), dim=-1)
                    real = self._tokens_mask
                    if real is None or real.shape != cos.shape:  # no mask given (or not per token): all count
                        real = torch.ones_like(cos)
                    real = real.to(cos.device, cos.dtype)
                    self.influence[index] += float(((1 - cos) * real).sum())
                    self.tokens[index] += float(real.sum())
            return output if self.mask[index] > 0 else _with_hidden(output, hidden)
        return hook

    def kept(self) -> list[int]:
        return torch.nonzero(self.mask > 0).flatten().tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"influence": self.influence.tolist(), "tokens": self.tokens.tolist(), "mask": self.mask.tolist(),
                "sparsity": self.sparsity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.influence = torch.tensor(state["influence"], dtype=torch.float64)
        self.tokens = torch.tensor(state["tokens"], dtype=torch.float64)
        self.mask = torch.tensor(state["mask"], dtype=torch.float32)
        self.sparsity = float(state["sparsity"])


def layers_removed(sparsity: float, count: int) -> int:
    """How many of ``count`` layers ``layer_sparsity = sparsity`` removes: ``round(sparsity * count)``, at least one
    layer staying."""
    return min(round(sparsity * count), count - 1)


def remove_layers(model: PreTrainedModel, kept: list[int]) -> PrunedStructure:
    """Drop every transformer layer not in ``kept`` (current indices, sorted) from ``model`` in place: the module list,
    the config's layer count and per-layer fields, the layers' ``layer_idx``; the structure records which dense
    layers remain. Returns the new structure."""
    layers = transformer_layers(model)
    if not kept or sorted(set(kept)) != list(kept) or not all(0 <= i < len(layers) for i in kept):
        raise HfpruneError(f"remove_layers: expected sorted unique layer indices in [0, {len(layers)}), at least "
                           f"one, got {kept}")
    structure = PrunedStructure.of(model)
    if len(kept) == len(layers):
        return structure
    structure.dense_num_layers = structure.dense_num_layers or len(layers)
    structure.kept_layers = [structure.layer_numbers()[i] for i in kept]
    structure.kept_heads = [structure.kept_heads[i] for i in kept]
    structure.kept_neurons = [structure.kept_neurons[i] for i in kept]
    spec = get_architecture(model)
    parent_path, _, name = spec.layers.rpartition(".")
    parent = model.base_model.get_submodule(parent_path) if parent_path else model.base_model
    setattr(parent, name, nn.ModuleList([layers[i] for i in kept]))
    if isinstance(getattr(parent, "n_layers", None), int):  # DistilBERT's Transformer keeps its own layer count
        parent.n_layers = len(kept)
    for new, layer in enumerate(transformer_layers(model)):
        for module in layer.modules():  # attention modules (and some layers) index the KV cache by layer_idx
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new
    structure.attach(model)  # the model's own config copy, before it is rewritten
    config = model.config
    for field in PER_LAYER_CONFIG_FIELDS:
        values = getattr(config, field, None)
        if isinstance(values, list) and len(values) == len(layers):
            setattr(config, field, [values[i] for i in kept])
    config.num_hidden_layers = len(kept)
    return structure
