"""The weight matrices that weight-level pruning works on: the query/key/value, attention-output, FFN-in and FFN-out
weights of every layer, found through the unit groups (and so through the one architecture table), never by name.

Selection works on the (out_features, in_features) view of each weight, whatever the module stores (GPT-2's Conv1D
keeps it transposed), so "consecutive input weights" means the same thing for every architecture. After head / FFN
pruning, the weights still in play form a rectangle: the kept rows of a producer, the kept columns of a consumer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from transformers import PreTrainedModel

from hfprune.pruning.units import UnitKind, as_out_in, feature_mask, unit_element_index, unit_groups, weight_axes


@dataclass(frozen=True)
class PrunableMatrix:
    """One prunable weight: its module, qualified name, and how its units lie along its rows or columns."""

    name: str
    """Qualified module name in the model, e.g. ``bert.encoder.layer.0.attention.self.query``."""
    module: nn.Module
    layer: int
    kind: UnitKind
    is_producer: bool
    """Producers carry their units along the output rows, the consumer along its input columns."""
    unit_width: int
    blocks: int

    @property
    def weight(self) -> nn.Parameter:
        return self.module.weight

    def out_in(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (weight layout) as (out, in), or an (out, in) tensor back in the weight layout."""
        return as_out_in(tensor, self.module)

    def remaining(self, unit_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (out) and columns (in) left by a unit keep-mask of this matrix's layer and kind (None: all)."""
        if unit_mask is None:
            return self.remaining_features(None)
        blocks = self.blocks if self.is_producer else 1
        return self.remaining_features(feature_mask(unit_mask.detach().cpu(), self.unit_width, blocks))

    def remaining_features(self, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (out) and columns (in) left when only ``features`` (along the unit axis; None: all) are kept."""
        out_features, in_features = self.out_in(self.weight).shape
        rows = torch.ones(out_features, dtype=torch.bool)
        cols = torch.ones(in_features, dtype=torch.bool)
        if features is not None:
            rows, cols = (features, cols) if self.is_producer else (rows, features)
        return rows, cols

    def unit_index(self, kept: torch.Tensor, num_units: int) -> tuple[int, torch.Tensor]:
        """(weight axis, feature indices) that slicing down to the ``kept`` units keeps, in the weight's layout."""
        out_axis, in_axis = weight_axes(self.module)
        axis = out_axis if self.is_producer else in_axis
        index = unit_element_index(kept, num_units, self.unit_width, self.blocks if self.is_producer else 1)
        return axis, index


def prunable_matrices(model: PreTrainedModel) -> list[PrunableMatrix]:
    """Every layer's producer and consumer weights of heads and FFN neurons, layer by layer in a fixed order."""
    names = {id(module): name for name, module in model.named_modules()}
    matrices = []
    by_layer = zip(unit_groups(model, UnitKind.HEADS), unit_groups(model, UnitKind.NEURONS), strict=True)
    for groups in by_layer:
        for group in groups:
            for module in group.producers:
                matrices.append(PrunableMatrix(names[id(module)], module, group.layer, group.kind, True,
                                               group.width_of(module), group.blocks))
            matrices.append(PrunableMatrix(names[id(group.consumer)], group.consumer, group.layer, group.kind, False,
                                           group.unit_width, group.blocks))
    return matrices


def rectangle(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The (out, in) boolean mask of the rectangle ``rows`` x ``cols``."""
    return rows[:, None] & cols[None, :]
