"""Per-layer widths under a latency budget: which heads and FFN neurons to keep so the model meets a predicted
latency on the user's device (issue #21), from a measured ``LatencyTable``.

**Greedy by score per millisecond**, not a dynamic program. Every attention and FFN block starts at its current
full width; at each step the block whose next removal (one unit, or ``head_round_to`` / ``ffn_round_to`` units) costs
the least normalised score per millisecond saved gives it up, until the predicted latency meets the budget. Why:
the objective is a sum over blocks, each block's kept score is concave in its width (units go lowest score first)
and the measured latency is close to linear in width, so this is the fractional-knapsack order, optimal up to the
last step; it costs O(units log blocks) per mask update. A dynamic program over layers would need the budget cut
into millisecond bins and cost bins x widths x blocks (about 10^7-10^8 for MiniLM) at every update, and its extra
optimality only shows where the table is far from linear (GEMM width effects), which the greedy still follows
step by step since it reads the table's own millisecond difference of each step.

A block whose units do not pay for their latency goes entirely: attention blocks down to ``min_heads_per_layer``, FFN
blocks down to ``min_neurons_per_layer`` (0 empties them). A block has a fixed cost beyond its units (the table's
attention(1) and ffn(1): kernel launches, the activation, the softmax) that only its last step saves, so the latency
is not linear there and one step at a time would reach that saving late or never. Each block therefore also offers
the move "down to the minimum at once", at its own score per millisecond; it is taken when it is the cheapest per
millisecond and the budget still needs at least what it saves (otherwise the steps go on, so a block is not emptied
to cover the last fraction of a millisecond).

Scores of heads and of neurons live on different scales (a head carries many more weights), so each kind's scores
are divided by the sum of their absolute values over all layers and multiplied by the kind's share of the dense
model's block latency before the two kinds compete for the budget: a unit of average score then costs the same score
per millisecond in either kind, and what goes first is decided by how the scores spread within each kind.
The budget ramps on the cubic schedule from the dense model's predicted latency to the target.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel

from hfprune.errors import ConfigError
from hfprune.pruning.distributed import from_main_process
from hfprune.pruning.latency_table import LatencyTable, latency_table
from hfprune.pruning.units import UnitKind

if TYPE_CHECKING:
    from hfprune.pruning.config import PruningConfig

# model -> the latency table its pruning used (set at compaction; ``save_pruned`` writes it next to the model)
LATENCY_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class _Block:
    kind: UnitKind
    layer: int
    order: torch.Tensor  # unit indices, lowest normalised score first (ties by index)
    values: torch.Tensor  # normalised scores in that order
    kept: int
    low: int
    step: int

    def next_width(self) -> int | None:
        if self.kept <= self.low:
            return None
        size = self.order.numel()
        drop = (self.kept % self.step) or self.step if self.kept == size else self.step
        return max(self.low, self.kept - drop)


def select_for_latency(scores: dict[UnitKind, list[torch.Tensor]], table: LatencyTable, budget_ms: float,
                       min_per_layer: dict[UnitKind, int], round_to: dict[UnitKind, int],
                       removed_layers: Collection[int] = ()) -> dict[UnitKind, list[torch.Tensor]]:
    """Keep-masks per kind and layer whose predicted latency (``table.predict``) is at most ``budget_ms`` (or as
    close as the minimum widths allow), removing the least score per millisecond first (module docstring). The
    ``removed_layers`` (whole layers masked by ``layer_sparsity``) cost nothing: their blocks are left out of the
    search (all-ones masks: the layer goes whole at compaction) and of the prediction (``predicted_ms``)."""
    cost = {UnitKind.HEADS: table.attention, UnitKind.NEURONS: table.ffn}
    removed = set(removed_layers)
    dense_ms = {kind: sum(cost[kind](s.numel()) for s in layers) for kind, layers in scores.items()}
    blocks: list[_Block] = []
    for kind, layers in scores.items():
        total = float(sum(s.detach().float().abs().sum() for s in layers)) or 1.0
        share = dense_ms[kind] / (sum(dense_ms.values()) or 1.0)
        for layer, score in enumerate(layers):
            if layer in removed:
                continue
            normalised = score.detach().float().cpu() * (share / total)
            order = torch.sort(normalised, stable=True).indices
            low = min(max(min_per_layer[kind], table.narrowest(kind)), score.numel())
            blocks.append(_Block(kind, layer, order, normalised[order], score.numel(), low, max(1, round_to[kind])))
    predicted = _predict(table, {kind: [s.numel() for s in layers] for kind, layers in scores.items()}, removed)
    heap: list[tuple[float, int, int, int, int]] = []  # (score per ms, move, block, kept when pushed, new width)

    def push(index: int) -> None:
        block = blocks[index]
        width = block.next_width()
        if width is None:
            return
        # the next step, and going down to the block's minimum at once: a block's fixed cost (ffn(1), attention(1))
        # is saved only by its last step, which a step-by-step search would reach too late or never
        for move, target in enumerate(dict.fromkeys((width, block.low))):
            size = block.order.numel()
            lost = float(block.values[size - block.kept:size - target].sum())
            saved = cost[block.kind](block.kept) - cost[block.kind](target)
            heapq.heappush(heap, (lost / max(saved, 1e-9), move, index, block.kept, target))

    for index in range(len(blocks)):
        push(index)
    while predicted > budget_ms and heap:
        _, move, index, kept, width = heapq.heappop(heap)
        block = blocks[index]
        saved = cost[block.kind](block.kept) - cost[block.kind](width)
        if block.kept != kept or (move and saved > predicted - budget_ms):
            continue  # stale; or emptying saves more than the budget still needs (the steps go on instead)
        predicted -= saved
        block.kept = width
        push(index)
    masks = {kind: [torch.ones_like(s, dtype=torch.float32) for s in layers] for kind, layers in scores.items()}
    for block in blocks:
        mask = torch.zeros(block.order.numel())
        mask[block.order[block.order.numel() - block.kept:]] = 1
        masks[block.kind][block.layer] = mask.to(scores[block.kind][block.layer].device)
    return masks


def _predict(table: LatencyTable, widths: dict[UnitKind, list[int]], removed: Collection[int] = ()) -> float:
    """The table's prediction for the layers not ``removed``; a kind that is not pruned stays at its full width."""
    kept = [layer for layer in range(table.layers) if layer not in set(removed)]
    heads = widths.get(UnitKind.HEADS) or [table.head_steps[-1]] * table.layers
    neurons = widths.get(UnitKind.NEURONS) or [table.neuron_steps[-1]] * table.layers
    return table.predict([heads[i] for i in kept], [neurons[i] for i in kept])


def predicted_ms(table: LatencyTable, masks: dict[UnitKind, list[torch.Tensor]],
                 removed_layers: Collection[int] = ()) -> float:
    """The table's prediction for the widths these keep-masks leave, without the ``removed_layers``."""
    widths = {kind: [int((m > 0).sum()) for m in layer_masks] for kind, layer_masks in masks.items()}
    return _predict(table, widths, removed_layers)


class LatencyBudget:
    """The latency target of one pruning run: its table, the target in milliseconds, and where the ramp stands."""

    def __init__(self, table: LatencyTable, speedup: float = 0.0, target_ms: float = 0.0) -> None:
        self.table = table
        self.speedup = speedup
        self.target_ms = target_ms if target_ms > 0 else table.dense_predicted_ms / speedup
        self.progress = 0.0

    def budget_ms(self, progress: float) -> float:
        """The budget at ``progress`` (the cubic schedule's fraction, in [0, 1]): dense at 0, the target at 1."""
        dense = self.table.dense_predicted_ms
        return dense - progress * (dense - self.target_ms)

    def check_feasible(self, min_per_layer: dict[UnitKind, int], removed_layers: int = 0) -> None:
        """A one-line error when even the minimum widths (in the layers left once ``removed_layers`` whole layers
        are gone) are predicted slower than the target."""
        table = self.table
        fastest = table.predict(*([max(min_per_layer[kind], table.narrowest(kind))] * (table.layers - removed_layers)
                                  for kind in (UnitKind.HEADS, UnitKind.NEURONS)))
        if fastest > self.target_ms:
            field = "latency_target_ms" if self.speedup <= 0 else "latency_target"
            asked = f"{self.target_ms:.3g} ms" if self.speedup <= 0 else f"{self.speedup:g}x"
            raise ConfigError(
                f"PruningConfig.{field}: {asked} is out of reach on this device: the minimum widths are predicted "
                f"at {fastest:.3g} ms (floor {table.floor_ms:.3g} ms), at most "
                f"{table.dense_predicted_ms / fastest:.2f}x the dense {table.dense_predicted_ms:.3g} ms")

    def select(self, scores: dict[UnitKind, list[torch.Tensor]], progress: float, min_per_layer: dict[UnitKind, int],
               round_to: dict[UnitKind, int], removed_layers: Collection[int] = ()
               ) -> dict[UnitKind, list[torch.Tensor]]:
        self.progress = progress
        return select_for_latency(scores, self.table, self.budget_ms(progress), min_per_layer, round_to,
                                  removed_layers)

    def state_dict(self) -> dict[str, Any]:
        return {"table": self.table.to_dict(), "progress": self.progress}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume with the saved table (not a re-measured one), so the masks chosen next are the same."""
        self.table = LatencyTable.from_dict(state["table"], "pruning state latency table")
        if self.speedup > 0:
            self.target_ms = self.table.dense_predicted_ms / self.speedup
        self.progress = float(state["progress"])


def latency_budget_of(model: PreTrainedModel, config: PruningConfig, table: LatencyTable | None = None
                      ) -> LatencyBudget:
    """The budget of ``config``'s latency target for ``model``, with ``table`` or the cached / measured one of the
    config's setting."""
    if table is None:  # measured (or read) on rank 0 only: timings differ between processes, masks must not
        table = LatencyTable.from_dict(from_main_process(lambda: latency_table(
            model, config.latency_batch_size, config.latency_seq_len, config.latency_threads).to_dict()))
    return LatencyBudget(table, speedup=config.latency_target, target_ms=config.latency_target_ms)
