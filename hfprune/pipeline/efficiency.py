"""Honest efficiency figures of one pruned model: parameters, size on disk, and CPU latency with dense kernels and,
where weights are zeroed, with a sparse (CSR) kernel.

Weight sparsity leaves the matrices' shapes alone, so dense kernels multiply the zeros and are no faster; the only
ways it pays are a smaller file (``save_compressed``: values + bitmask) and a kernel that skips zeros. Both are
measured here, never assumed: the dense model, the pruned model with dense kernels and the pruned model with
``torch.sparse`` CSR matrices run interleaved in one process (``interleaved_timings``) at sequence length 128, batch
1 and 32, and the report gives the medians of the latencies and of the per-round ratios. The sparse-kernel copy's
logits are compared with the dense-kernel logits on the same batch (``sparse_max_abs_diff``).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import torch

logger = get_logger(__name__)

EFFICIENCY_FILE = "efficiency.json"
SEQ_LEN = 128
# batch size -> timed rounds; batch 32 forwards take seconds on one core, so fewer of them
DEFAULT_ROUNDS = {1: 10, 32: 3}


def file_bytes(folder: Path) -> int:
    """Bytes of the weight files (``*.safetensors``) in ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def compressed_bytes(model: Any) -> int:
    """Bytes of the safetensors file ``save_compressed`` writes for ``model`` (written to a temporary folder)."""
    from hfprune.pruning.serialization import save_compressed

    with tempfile.TemporaryDirectory(prefix="hfprune-compressed-") as scratch:
        target = save_compressed(model, Path(scratch) / "model")
        return file_bytes(target)


def _logits(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    import torch

    with torch.no_grad():
        return model(**inputs).logits


def measure_latencies(dense: Any, pruned: Any, sparse: Any | None, rounds: dict[int, int] | None = None,
                      seq_len: int = SEQ_LEN) -> dict[str, Any]:
    """Per batch size: median ms of ``dense``, ``pruned`` (dense kernels) and ``sparse`` (CSR kernels, if given),
    timed interleaved, and the median per-round ratios; plus the sparse kernel's largest logit difference."""
    import torch

    from hfprune.pruning.latency import random_token_batch
    from hfprune.utils.timing import interleaved_timings

    result: dict[str, Any] = {"seq_len": seq_len, "threads": torch.get_num_threads(), "batches": {}}
    for batch_size, count in sorted((rounds or DEFAULT_ROUNDS).items()):
        inputs = random_token_batch([dense], batch_size, seq_len)
        models = {"dense": dense, "pruned": pruned, **({"sparse": sparse} if sparse is not None else {})}
        times = interleaved_timings(models, inputs, count, inference_mode=False)  # CSR layers need no_grad
        entry: dict[str, Any] = {"rounds": count, **{f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()}}
        entry["speedup_dense_kernel"] = statistics.median(
            d / p for d, p in zip(times["dense"], times["pruned"], strict=True))
        if sparse is not None:
            entry["speedup_sparse_kernel"] = statistics.median(
                d / s for d, s in zip(times["dense"], times["sparse"], strict=True))
            entry["sparse_vs_dense_kernel"] = statistics.median(
                p / s for p, s in zip(times["pruned"], times["sparse"], strict=True))
            diff = (_logits(pruned, inputs) - _logits(sparse, inputs)).abs().max()
            entry["sparse_max_abs_diff"] = float(diff)
        logger.info("batch %d: dense %.1f ms, pruned (dense kernel) %.1f ms%s", batch_size, entry["dense_ms"],
                    entry["pruned_ms"], "" if sparse is None else f", pruned (CSR kernel) {entry['sparse_ms']:.1f} ms")
        result["batches"][str(batch_size)] = entry
    return result


def measure_efficiency(dense: Any, dense_dir: Path, pruned: Any, model_dir: Path, rounds: dict[int, int] | None = None,
                       seq_len: int = SEQ_LEN) -> dict[str, Any]:
    """Parameters, bytes on disk (the saved folder and a compressed save) and latencies of ``pruned`` against
    ``dense``; the CSR kernel is timed only when the pruned model has zeroed weights."""
    from hfprune.pruning.stats import sparsity_report
    from hfprune.pruning.weight.sparse_kernel import to_sparse_kernel

    report = sparsity_report(pruned, seq_len)
    weight_zeroed = report.weights_kept < report.weights_total
    sparse = to_sparse_kernel(pruned) if weight_zeroed else None
    return {
        "params": report.params, "nonzero_params": report.nonzero_params,
        "weights_kept": report.weights_kept, "weights_total": report.weights_total,
        "safetensors_bytes": file_bytes(model_dir), "compressed_bytes": compressed_bytes(pruned),
        "dense_safetensors_bytes": file_bytes(dense_dir),
        "latency": measure_latencies(dense, pruned, sparse, rounds, seq_len),
    }
