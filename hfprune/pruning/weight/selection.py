"""Choosing weight keep-masks from scores: unstructured top-k, and the N:M semi-structured pattern.

Selectors take, per matrix, the scores of the weights still in play as an (out, in) tensor and return boolean
keep-masks of the same shapes. Ties break by position (row-major, then matrix order), so every process and every
resume agrees.
"""

from __future__ import annotations

import torch


def lowest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` lowest entries of a 1-D tensor, ties taken by position; linear time (kthvalue)."""
    selected = torch.zeros(values.numel(), dtype=torch.bool, device=values.device)
    if k <= 0:
        return selected
    if k >= values.numel():
        return ~selected
    kth = torch.kthvalue(values.float(), k).values
    selected |= values < kth
    ties = torch.nonzero(values == kth).flatten()[: k - int(selected.sum())]
    selected[ties] = True
    return selected


def top_k_masks(scores: list[torch.Tensor], sparsity: float, allocation: str) -> list[torch.Tensor]:
    """Keep-masks removing the ``round(sparsity * n)`` lowest-scoring weights of each matrix (``per_matrix``) or of
    all matrices ranked together (``global``)."""
    if allocation == "per_matrix":
        return [~lowest(s.reshape(-1), round(sparsity * s.numel())).reshape(s.shape) for s in scores]
    flat = torch.cat([s.reshape(-1).float() for s in scores])
    pruned = lowest(flat, round(sparsity * flat.numel()))
    return [~p.reshape(s.shape) for p, s in zip(torch.split(pruned, [s.numel() for s in scores]), scores,
                                                strict=True)]


def n_of_m_masks(scores: list[torch.Tensor], sparsity: float, allocation: str, n: int, m: int) -> list[torch.Tensor]:
    """Keep-masks with at most ``n`` nonzeros in every group of ``m`` consecutive input weights of a row.

    Gradual version of the N:M pattern (Mishra et al. 2021; Zhou et al. 2021): at ``sparsity`` below the pattern's
    own ``1 - n/m``, only the fraction ``sparsity / (1 - n/m)`` of groups is made N:M -- those whose ``m - n``
    lowest scores sum lowest -- so the schedule ramps smoothly and ends with every group N:M. A trailing group
    shorter than ``m`` (when heads or neurons were removed from a consumer's inputs) keeps at most ``n``.
    """
    plans = [_group_plan(s, n, m) for s in scores]
    fraction = sparsity / (1 - n / m)
    if allocation == "per_matrix":
        chosen = [_cheapest_groups(cost.reshape(-1), fraction).reshape(cost.shape) for _, cost in plans]
    else:
        flat = _cheapest_groups(torch.cat([cost.reshape(-1) for _, cost in plans]), fraction)
        chosen = [c.reshape(cost.shape) for c, (_, cost) in zip(
            torch.split(flat, [cost.numel() for _, cost in plans]), plans, strict=True)]
    return [_keep_mask(order, pick, s.shape, m) for (order, _), pick, s in zip(plans, chosen, scores, strict=True)]


def _group_plan(scores: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of ``m`` inputs: the positions of its ``m - n`` lowest scores, and the cost of pruning them (their
    sum; +inf for a short group with nothing to prune). Short groups are padded with -inf, pruned first."""
    rows, cols = scores.shape
    groups = -(-cols // m)
    padded = torch.full((rows, groups * m), float("-inf"), device=scores.device)
    padded[:, :cols] = scores.float()
    grouped = padded.reshape(rows, groups, m)
    order = torch.sort(grouped, dim=-1, stable=True).indices[..., : m - n]
    pruned = torch.gather(grouped, -1, order)
    real = torch.isfinite(pruned)
    cost = torch.where(real, pruned, torch.zeros_like(pruned)).sum(-1)
    return order, cost.masked_fill(~real.any(-1), float("inf"))


def _cheapest_groups(cost: torch.Tensor, fraction: float) -> torch.Tensor:
    prunable = int(torch.isfinite(cost).sum())
    return lowest(cost, round(fraction * prunable))


def _keep_mask(order: torch.Tensor, chosen: torch.Tensor, shape: torch.Size, m: int) -> torch.Tensor:
    rows, cols = shape
    drop = torch.zeros((*order.shape[:-1], m), dtype=torch.bool, device=order.device)
    drop.scatter_(-1, order, chosen[..., None].expand_as(order))
    return ~drop.reshape(rows, order.shape[1] * m)[:, :cols]
