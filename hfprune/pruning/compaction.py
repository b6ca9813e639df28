"""Physical compaction: slice masked heads and neurons out of the weights so the model is really smaller."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.architectures import get_architecture, transformer_layers
from hfprune.pruning.empty_attention import empty_attention
from hfprune.pruning.masks import ACTIVE_PRUNERS, ACTIVE_WEIGHT_PRUNERS
from hfprune.pruning.structure import PrunedStructure
from hfprune.pruning.units import UnitGroup, UnitKind, unit_groups

UnitMasks = dict[UnitKind, list[torch.Tensor]]


def compact(model: PreTrainedModel, masks: UnitMasks | None = None) -> PrunedStructure:
    """Remove every unit whose mask is 0, in place, and record the kept structure on ``model.config``.

    Without ``masks``, the pruner currently attached to ``model`` (e.g. by ``MovementPruningCallback``) compacts
    with its own masks, removes its hooks and zeroes its pruned weights. Weight masks of an attached
    ``WeightPruner`` are sliced along with the weights, so a weight-masked model computes the same after
    compaction. Returns the new structure.
    """
    if masks is None:
        pruner = ACTIVE_PRUNERS.get(model)
        if pruner is None:
            raise HfpruneError("compact: no masks given and no pruner is attached to this model")
        return pruner.compact()
    weights = ACTIVE_WEIGHT_PRUNERS.get(model)
    structure = PrunedStructure.of(model)
    for kind, kind_masks in masks.items():
        kept_table = structure.kept_heads if kind is UnitKind.HEADS else structure.kept_neurons
        groups = unit_groups(model, kind)
        if len(kind_masks) != len(groups):
            raise HfpruneError(f"compact: masks[{kind.value!r}]: expected one mask per layer ({len(groups)}), got "
                               f"{len(kind_masks)}")
        for group, mask in zip(groups, kind_masks, strict=True):
            if mask.numel() != group.num_units:
                raise HfpruneError(f"compact: masks[{kind.value!r}][{group.layer}]: expected {group.num_units} values "
                                   f"(one per {kind.value[:-1]} left in the layer), got {mask.numel()}")
            kept = torch.nonzero(mask.detach().cpu() > 0).flatten()
            if kept.numel() == group.num_units:
                continue
            if weights is not None:
                weights.keep_units(group, kept)
            group.keep(kept)
            kept_table[group.layer] = [kept_table[group.layer][i] for i in kept.tolist()]
            if kind is UnitKind.HEADS:
                set_head_count(model, group, kept.numel())
                if kept.numel() == 0:
                    empty_attention(model, transformer_layers(model)[group.layer])
    structure.attach(model)
    return structure


def set_head_count(model: PreTrainedModel, group: UnitGroup, num_heads: int) -> None:
    """Rewrite the attention module's head-count attributes after slicing (per the architecture table)."""
    spec = get_architecture(model)
    values = {"heads": num_heads, "width": num_heads * group.unit_width}
    for attr, what in spec.head_count_attrs:
        setattr(group.attention, attr, values[what])
