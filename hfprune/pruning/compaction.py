"""Physical compaction: slice masked heads and neurons out of the weights so the model is really smaller."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.architectures import get_architecture, transformer_layers
from hfprune.pruning.empty_attention import empty_attention
from hfprune.pruning.empty_ffn import empty_ffn
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
        layers = len(transformer_layers(model))
        if len(kind_masks) != layers:
            raise HfpruneError(f"compact: masks[{kind.value!r}]: expected one mask per layer ({layers}), got "
                               f"{len(kind_masks)}")
        for group, mask in zip(_groups_for(model, kind, kind_masks), kind_masks, strict=True):
            if mask.numel() != group.num_units:
                raise HfpruneError(f"compact: masks[{kind.value!r}][{group.layer}]: expected {group.num_units} values "
                                   f"(one per {kind.value[:-1]} left in the layer), got {mask.numel()}")
            kept = torch.nonzero(mask.detach().cpu() > 0).flatten()
            if kept.numel() == group.num_units:
                continue
            if weights is not None:
                if group.shared:
                    raise HfpruneError("compact: weight masks cannot follow query-head masks of grouped-query "
                                       "attention; use key/value group masks (head_granularity 'group')")
                weights.keep_units(group, kept)
            heads = group.query_heads(kept)
            group.keep(kept)
            kept_table[group.layer] = [kept_table[group.layer][i] for i in heads.tolist()]
            if kind is UnitKind.HEADS:
                set_head_count(model, group)
                if kept.numel() == 0:
                    empty_attention(model, transformer_layers(model)[group.layer])
            elif kept.numel() == 0:
                empty_ffn(model, transformer_layers(model)[group.layer])
    structure.attach(model)
    express_uniform_widths(model, structure)
    return structure


def _groups_for(model: PreTrainedModel, kind: UnitKind, masks: list[torch.Tensor]) -> list[UnitGroup]:
    """Each layer's unit group in the view its mask is in: key/value groups or query heads (grouped-query
    attention); the two coincide elsewhere."""
    by_group = unit_groups(model, kind, "group")
    if kind is UnitKind.NEURONS:
        return by_group
    by_query = unit_groups(model, kind, "query")
    chosen = []
    for group, query, mask in zip(by_group, by_query, masks, strict=True):
        if mask.numel() not in (group.num_units, query.num_units):
            raise HfpruneError(f"compact: layer {group.layer} has {query.num_units} heads in {group.num_units} "
                               f"key/value groups; got a head mask of {mask.numel()}")
        chosen.append(group if mask.numel() == group.num_units else query)
    return chosen


def set_head_count(model: PreTrainedModel, group: UnitGroup) -> None:
    """Rewrite the attention module's head-count attributes after slicing (per the architecture table), from the
    weights' shapes."""
    spec = get_architecture(model)
    heads = int(group.query_heads(torch.arange(group.num_units)).numel())
    kv = group.num_shared if group.shared else (group.num_units if spec.kv_producers else heads)
    values = {"heads": heads, "width": heads * group.head_dim, "groups": heads // kv if kv else 1}
    for attr, what in spec.head_count_attrs:
        setattr(group.attention, attr, values[what])


def express_uniform_widths(model: PreTrainedModel, structure: PrunedStructure) -> None:
    """Write widths that every layer shares into ``model.config`` (as far as the config can express them: head
    counts only with an explicit ``head_dim`` field), so that plain ``from_pretrained`` builds the pruned shapes;
    widths that differ between layers go back to their dense values (``load_pruned`` rebuilds those)."""
    spec = get_architecture(model)
    config = model.config
    neurons = {len(kept) for kept in structure.kept_neurons}
    setattr(config, spec.ffn_size_field, neurons.pop() if len(neurons) == 1 else structure.dense_ffn_size)
    if spec.head_dim_field is None:
        return
    heads = {(g.num_units, g.num_shared or g.num_units) for g in unit_groups(model, UnitKind.HEADS, "query")}
    num_heads, num_kv = heads.pop() if len(heads) == 1 else (0, 0)
    if num_heads == 0:
        num_heads, num_kv = structure.dense_num_heads, structure.dense_num_kv_heads
    setattr(config, spec.num_heads_field, num_heads)
    if spec.num_kv_heads_field:
        setattr(config, spec.num_kv_heads_field, num_kv)
