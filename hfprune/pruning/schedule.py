"""Sparsity schedule: a pure function of the optimizer step."""

from __future__ import annotations


def cubic_sparsity(
    step: int,
    total_steps: int,
    final_sparsity: float,
    warmup_steps: int = 0,
    cooldown_steps: int = 0,
    initial_sparsity: float = 0.0,
) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f)(1 - p)^3, p the progress between warm-up and cool-down.

    Before ``warmup_steps`` the sparsity is ``initial_sparsity``; from ``total_steps - cooldown_steps`` on it is
    ``final_sparsity``. The ramp is steep early, when the network can still recover, and flat late.
    """
    end = total_steps - cooldown_steps
    if step < warmup_steps:
        return initial_sparsity
    if step >= end or end <= warmup_steps:
        return final_sparsity
    progress = (step - warmup_steps) / (end - warmup_steps)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3
