"""CPU latency of a pruned model beside its dense original, measured interleaved so machine noise hits both alike.

A short version of ``scripts/bench_speed.py`` for run reports: one random batch at sequence length 128 (or the
model's maximum), forwards timed dense, pruned, pruned, dense, ... under ``inference_mode``; medians of the
latencies and of the per-round ratios.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.utils.logging import get_logger
from hfprune.utils.positions import max_positions

if TYPE_CHECKING:
    import torch

logger = get_logger(__name__)


@dataclass(frozen=True)
class Latency:
    """Median forward latencies (milliseconds) and the median per-round speedup dense / pruned."""

    seq_len: int
    batch_size: int
    rounds: int
    threads: int
    dense_ms: float
    pruned_ms: float
    speedup: float
    device: str = "cpu"  # the device that timed it (CUDA: GPU time between CUDA events, after a warm-up pass)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_token_batch(models: list[torch.nn.Module], batch_size: int, seq_len: int,
                       seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded batch of random token ids (past the first few, often special, ids of the first model's vocabulary),
    ``seq_len`` long or as long as the shortest position table of ``models`` allows, with a full attention mask."""
    import torch


    limit = min(p for p in (*(max_positions(getattr(m, "config", None)) for m in models), seq_len) if p)
    vocab = int(getattr(models[0].config, "vocab_size", 1000))
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(min(5, vocab - 1), vocab, (batch_size, limit), generator=generator),
            "attention_mask": torch.ones(batch_size, limit, dtype=torch.long)}


def measure_latency(
    dense: torch.nn.Module, pruned: torch.nn.Module, seq_len: int = 128, batch_size: int = 1, rounds: int = 20,
    seed: int = 0,
) -> Latency:
    """Time ``rounds`` forwards of each model on the same random token batch, alternating which goes first."""
    import torch

    from hfprune.utils.timing import interleaved_timings

    if rounds < 1:
        raise ConfigError(f"rounds: expected an integer >= 1, got {rounds!r}")
    device = next(dense.parameters()).device  # the models' device: the run's training.device
    inputs = {k: v.to(device) for k, v in random_token_batch([dense, pruned], batch_size, seq_len, seed).items()}
    limit = inputs["input_ids"].shape[1]
    times = interleaved_timings({"dense": dense, "pruned": pruned}, inputs, rounds)
    dense_times, pruned_times = times["dense"], times["pruned"]
    ratios = [d / p for d, p in zip(dense_times, pruned_times, strict=True)]
    latency = Latency(limit, batch_size, rounds, torch.get_num_threads(), 1000 * statistics.median(dense_times),
                      1000 * statistics.median(pruned_times), statistics.median(ratios), device.type)
    logger.info("latency on %s at seq %d, batch %d: dense %.1f ms, pruned %.1f ms (%.2fx)", device.type, limit,
                batch_size, latency.dense_ms, latency.pruned_ms, latency.speedup)
    return latency
