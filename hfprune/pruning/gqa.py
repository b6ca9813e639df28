"""Query-head masks that grouped-query attention can run: every kept key/value group keeps the same number of
query heads (transformers repeats each key/value head ``num_key_value_groups`` times).

With ``head_granularity: query`` the scores rank single query heads; the kept count chosen per layer is then
moved to the nearest count ``groups x heads per group`` and, among those, the pattern with the highest summed
score is kept: each kept group keeps its best query heads, and the groups kept are the best at that size.
"""

from __future__ import annotations

import torch

from hfprune.pruning.units import UnitGroup

Pattern = tuple[int, int]
"""(key/value groups kept, query heads kept per group)."""


def equal_group_masks(masks: list[torch.Tensor], scores: list[torch.Tensor], groups: list[UnitGroup],
                      uniform: bool = False, min_per_layer: int = 0) -> list[torch.Tensor]:
    """``masks`` (query-head keep-masks) moved to the nearest runnable pattern per layer; with ``uniform`` one
    pattern for all layers (best summed score). Layers without grouped query heads are returned unchanged."""
    layers = [i for i, group in enumerate(groups) if group.shared and group.queries_per_kv > 1]
    if not layers:
        return masks
    result = list(masks)
    options = {i: _patterns(groups[i], scores[i], min_per_layer) for i in layers}
    if uniform:
        common = set.intersection(*(set(options[i]) for i in layers))
        target = int(masks[layers[0]].sum())
        best = min(common, key=lambda p: (abs(p[0] * p[1] - target), -sum(options[i][p][0] for i in layers), p))
        for i in layers:
            result[i] = options[i][best][1]
        return result
    for i in layers:
        target = int(masks[i].sum())
        best = min(options[i], key=lambda p, o=options[i], t=target: (abs(p[0] * p[1] - t), -o[p][0], p))
        result[i] = options[i][best][1]
    return result


def _patterns(group: UnitGroup, scores: torch.Tensor, min_per_layer: int) -> dict[Pattern, tuple[float, torch.Tensor]]:
    """Every runnable pattern of one layer with at least ``min_per_layer`` query heads: its summed score and mask."""
    per_group = group.queries_per_kv
    grid = scores.detach().float().cpu().reshape(-1, per_group)  # (key/value groups, query heads of each)
    order = torch.sort(grid, dim=1, descending=True, stable=True).indices
    best_first = torch.gather(grid, 1, order).cumsum(dim=1)  # [g, q - 1]: score of group g's best q heads
    patterns: dict[Pattern, tuple[float, torch.Tensor]] = {}
    if min_per_layer == 0:
        patterns[(0, 0)] = (0.0, torch.zeros(scores.numel()))
    for q in range(1, per_group + 1):
        ranked = torch.sort(best_first[:, q - 1], descending=True, stable=True)
        for g in range(1, grid.shape[0] + 1):
            if g * q < min_per_layer:
                continue
            mask = torch.zeros_like(grid)
            chosen = ranked.indices[:g]
            mask[chosen[:, None], order[chosen, :q]] = 1
            patterns[(g, q)] = (float(ranked.values[:g].sum()), mask.reshape(-1).to(scores.device))
    return patterns
