"""Weight sparsity, measured rather than assumed: parameters, size on disk, and CPU latency with and without a
sparse kernel.

A BERT-base-sized stack with random weights (latency does not depend on their values) is pruned with gradual
magnitude pruning at 50% and 90%, and with the 2:4 pattern (hfprune, one-shot). For each setting we report
- parameters: all of them, and those left nonzero (zeros still occupy dense matrices);
- bytes on disk of ``save_compressed`` (values + bitmask) against the dense ``model.safetensors``, and whether the
  compressed save reloads to identical logits;
- latency of one forward pass (batch 1, sequence 128, 2 threads by default) for the dense model, the same model
  with zeroed weights in dense matrices ("masked-dense": the same dense kernels), and with every pruned matrix as a
  ``torch.sparse_csr`` tensor (``hfprune.pruning.weight.sparse_kernel``: sparse W @ dense x^T on CPU). The three
  are timed interleaved in one process with the order rotated each round, so machine noise hits all alike; we
  report medians and the median per-round ratio.
The 2:4 tensor-core path (``torch.sparse.to_sparse_semi_structured``) needs CUDA; on CPU it is reported as
unavailable rather than estimated. Writes JSON and a markdown table.

    python scripts/bench_weight_sparsity.py --out benchmarks/weight_sparsity        # full run (minutes, 2 cores)
    python scripts/bench_weight_sparsity.py --quick --out /tmp/weight_sparsity      # smoke run, tiny config
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from transformers import AutoModel, BertConfig

from hfprune.pruning import PruningConfig, load_compressed, prune, save_compressed, sparsity_report
from hfprune.pruning.weight.sparse_kernel import to_sparse_kernel
from hfprune.utils.io import write_benchmark
from hfprune.utils.timing import interleaved_timings

CONFIGS = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
                 vocab_size=1000, max_position_embeddings=128),
}
SETTINGS = {  # name -> (weight_method, weight_sparsity)
    "magnitude-50%": ("magnitude", 0.5),
    "magnitude-90%": ("magnitude", 0.9),
    "2:4": ("2:4", 0.5),
}


def measure(models: dict[str, nn.Module], inputs: dict[str, torch.Tensor], rounds: int) -> dict[str, list[float]]:
    # not inference_mode: sparse CSR linear refuses inference tensors
    return interleaved_timings(models, inputs, rounds, inference_mode=False)


def disk_sizes(dense: nn.Module, pruned: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        dense.save_pretrained(Path(tmp) / "dense")
        save_compressed(pruned, Path(tmp) / "sparse")
        reloaded = load_compressed(Path(tmp) / "sparse")
        with torch.no_grad():  # not inference_mode: sparse CSR linear refuses inference tensors
            identical = torch.equal(reloaded(**inputs).last_hidden_state, pruned(**inputs).last_hidden_state)
        dense_bytes = (Path(tmp) / "dense" / "model.safetensors").stat().st_size
        sparse_bytes = (Path(tmp) / "sparse" / "model.safetensors").stat().st_size
    return {"dense_bytes": dense_bytes, "compressed_bytes": sparse_bytes, "size_ratio": sparse_bytes / dense_bytes,
            "reload_identical": identical}


def bench_setting(dense: nn.Module, name: str, args: argparse.Namespace, inputs: dict) -> dict[str, object]:
    method, sparsity = SETTINGS[name]
    pruned = copy.deepcopy(dense)
    prune(pruned, PruningConfig(weight_sparsity=sparsity, weight_method=method))
    report = sparsity_report(pruned, seq_len=args.seq_len)
    csr = to_sparse_kernel(pruned)
    with torch.no_grad():  # not inference_mode: sparse CSR linear refuses inference tensors
        csr_error = float((csr(**inputs).last_hidden_state - pruned(**inputs).last_hidden_state).abs().max())
    times = measure({"dense": dense, "masked_dense": pruned, "csr": csr}, inputs, args.rounds)
    ratios = {key: statistics.median(d / t for d, t in zip(times["dense"], times[key], strict=True))
              for key in ("masked_dense", "csr")}
    return {"setting": name, "weight_method": method, "weight_sparsity": report.weight_sparsity,
            "params": report.params, "nonzero_params": report.nonzero_params, **disk_sizes(dense, pruned, inputs),
            **{f"{key}_ms": 1000 * statistics.median(values) for key, values in times.items()},
            "masked_dense_speedup": ratios["masked_dense"], "csr_speedup": ratios["csr"],
            "csr_max_abs_error": csr_error}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = AutoModel.from_config(BertConfig(**CONFIGS[args.config])).eval()
    inputs = {"input_ids": torch.randint(100, 999, (args.batch, args.seq_len)),
              "attention_mask": torch.ones(args.batch, args.seq_len, dtype=torch.long)}
    results = []
    for name in args.settings:
        row = bench_setting(dense, name, args, inputs)
        print(json.dumps(row), flush=True)
        results.append(row)
    semi_structured = "available (CUDA)" if torch.cuda.is_available() else "unavailable: needs CUDA (not measured)"
    return {"command": args.command, "config": args.config, "threads": args.threads, "rounds": args.rounds,
            "batch": args.batch, "seq_len": args.seq_len, "torch": torch.__version__,
            "mkl": torch.backends.mkl.is_available(), "machine": platform.processor() or platform.machine(),
            "semi_structured_2_4_kernel": semi_structured, "results": results}


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}` ({payload['config']} config, torch {payload['torch']}, "
             f"{payload['threads']} threads, batch {payload['batch']}, sequence {payload['seq_len']}, "
             f"{payload['rounds']} interleaved rounds, medians). 2:4 sparse kernel: "
             f"{payload['semi_structured_2_4_kernel']}.", "",
             "| setting | weight sparsity | params | nonzero params | dense MB | compressed MB | reload identical | "
             "dense ms | masked-dense ms | CSR ms | masked-dense speedup | CSR speedup |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(f"| {r['setting']} | {r['weight_sparsity']:.1%} | {r['params']:,} | {r['nonzero_params']:,} | "
                     f"{r['dense_bytes'] / 1e6:.2f} | {r['compressed_bytes'] / 1e6:.2f} | {r['reload_identical']} | "
                     f"{r['dense_ms']:.1f} | {r['masked_dense_ms']:.1f} | {r['csr_ms']:.1f} | "
                     f"{r['masked_dense_speedup']:.2f}x | {r['csr_speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/weight_sparsity"))
    parser.add_argument("--config", default="bert-base", choices=list(CONFIGS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny config, sequence 32, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.config, args.seq_len, args.rounds = "tiny", 32, 3
    args.command = "python scripts/bench_weight_sparsity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    started = time.time()
    payload = run(args)
    payload["wall_time_s"] = round(time.time() - started, 1)
    write_benchmark(args.out, "weight_sparsity", payload, to_markdown(payload))


if __name__ == "__main__":
    main()
