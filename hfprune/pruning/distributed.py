"""Agreement across data-parallel processes: every rank must choose identical masks from its scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def mean_across_processes(scores: torch.Tensor) -> torch.Tensor:
    """Average ``scores`` over data-parallel ranks (a no-op in a single process), so that every rank picks
    identical masks even where its local scores drifted apart."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else scores.device
        reduced = scores.to(device, copy=True)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return (reduced / dist.get_world_size()).to(scores.device)
    return scores


def from_main_process(make: Callable[[], T]) -> T:
    """``make()`` on rank 0, sent to every rank (``make()`` itself in a single process): for what each rank would
    otherwise measure differently, e.g. a latency table, from which every rank must choose identical masks."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return make()
    payload = [make() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(payload, src=0)
    return payload[0]
