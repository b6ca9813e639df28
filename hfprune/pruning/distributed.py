"""Agreement across data-parallel processes: every rank must choose identical masks from its scores; and the
refusal of sharded runs (FSDP, DeepSpeed), where no rank sees full weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn
from accelerate.utils import parse_flag_from_env

from hfprune.errors import ConfigError

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


SUPPORTED_PARALLELISM = "a single process or DDP (torchrun / accelerate launch without FSDP or DeepSpeed)"


def sharding_in_use(args: Any, model: nn.Module | None = None) -> str | None:
    """What shards the parameters of this run (FSDP, DeepSpeed), from the Trainer arguments, accelerate's launch
    environment or the model's own wrapping; None for a single process or DDP, where every rank holds full weights.

    ``fsdp_config`` alone does not count: transformers reads it only when ``fsdp`` is set."""
    if getattr(args, "deepspeed", None):
        return "DeepSpeed (TrainingArguments.deepspeed)"
    if getattr(args, "fsdp", None):
        return "FSDP (TrainingArguments.fsdp)"
    for variable, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        if parse_flag_from_env(variable):
            return f"{name} ({variable} from accelerate launch)"
    if model is not None:
        # imported here: torch.distributed.fsdp costs seconds at import, and only a training run needs it
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
        from torch.distributed.tensor import DTensor

        if any(isinstance(module, (FullyShardedDataParallel, FSDPModule)) for module in model.modules()):
            return f"FSDP (the model is wrapped in {type(model).__name__} / fully_shard)"
        # DTensor: FSDP2 and tensor parallelism; ds_id: DeepSpeed ZeRO-3 partitioned parameters
        if any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in model.parameters()):
            return "sharded parameters (DTensor or DeepSpeed ZeRO-3)"
    return None


def check_unsharded(args: Any, model: nn.Module | None = None) -> None:
    """Refuse runs whose parameters are sharded: scores and masks computed per shard would differ from those of the
    full weights, silently. Raised before the pruner touches anything."""
    used = sharding_in_use(args, model)
    if used is not None:
        raise ConfigError(f"MovementPruningCallback: {sharding_refusal(used)}")


def sharding_refusal(used: str) -> str:
    """Why ``used`` (what :func:`sharding_in_use` found) is refused, and what is supported."""
    return (f"{used} is not supported (pruning scores and masks need full, unsharded weights on every process); "
            f"supported: {SUPPORTED_PARALLELISM}")
