"""CPU latency of compacted vs dense models beside the FLOPs-ideal speedup.

BERT-base-sized and GPT-2-small-sized stacks (random weights: latency does not depend on their values), pruned to
the requested head/FFN sparsities with hfprune and compacted. Dense and pruned forwards are timed interleaved in one
process (A, B, A, B, ...) so that machine noise hits both alike; we report median latencies and the median of the
per-round ratios. Writes JSON and a markdown table.

    python scripts/bench_speed.py --out benchmarks/speed            # full run (several minutes on 2 cores)
    python scripts/bench_speed.py --quick --out /tmp/speed          # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModel, BertConfig, GPT2Config

from hfprune import PruningConfig, prune, sparsity_report
from hfprune.utils.timing import interleaved_timings

ARCHS = {
    "bert-base": lambda: BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    intermediate_size=3072),
    "gpt2-small": lambda: GPT2Config(n_embd=768, n_layer=12, n_head=12),
}


def measure(dense, pruned, batch: int, seq_len: int, rounds: int) -> dict[str, float]:
    inputs = {"input_ids": torch.randint(100, 1000, (batch, seq_len)),
              "attention_mask": torch.ones(batch, seq_len, dtype=torch.long)}
    times = interleaved_timings({"dense": dense, "pruned": pruned}, inputs, rounds)
    dense_times, pruned_times = times["dense"], times["pruned"]
    ratios = [d / p for d, p in zip(dense_times, pruned_times, strict=True)]
    return {"dense_ms": 1000 * statistics.median(dense_times), "pruned_ms": 1000 * statistics.median(pruned_times),
            "speedup": statistics.median(ratios)}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    results = []
    for arch in args.archs:
        torch.manual_seed(0)
        dense = AutoModel.from_config(ARCHS[arch]()).eval()
        for head_sparsity, ffn_sparsity in args.sparsities:
            pruned = copy.deepcopy(dense)
            prune(pruned, PruningConfig(head_sparsity=head_sparsity, ffn_sparsity=ffn_sparsity, scoring="random",
                                        allocation="per_layer"))
            report = sparsity_report(pruned, seq_len=args.seq_len)
            ideal = report.flops_dense / report.flops
            for batch in args.batches:
                timing = measure(dense, pruned, batch, args.seq_len, args.rounds)
                row = {"arch": arch, "head_sparsity": head_sparsity, "ffn_sparsity": ffn_sparsity, "batch": batch,
                       "seq_len": args.seq_len, "flops_ideal_speedup": ideal, **timing,
                       "speedup_over_ideal": timing["speedup"] / ideal, "params_dense": report.params_dense,
                       "params_pruned": report.params}
                print(json.dumps(row), flush=True)
                results.append(row)
    return {"command": args.command, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "results": results}


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}` (torch {payload['torch']}, {payload['threads']} threads, "
             f"{payload['rounds']} interleaved rounds, medians)", "",
             "| model | heads / FFN pruned | batch | dense ms | pruned ms | speedup | FLOPs-ideal | measured / ideal |",
             "|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(f"| {r['arch']} | {r['head_sparsity']:.0%} / {r['ffn_sparsity']:.0%} | {r['batch']} | "
                     f"{r['dense_ms']:.1f} | {r['pruned_ms']:.1f} | {r['speedup']:.2f}x | "
                     f"{r['flops_ideal_speedup']:.2f}x | {r['speedup_over_ideal']:.2f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/speed"))
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--sparsities", nargs="+", default=["0.5,0.5", "0.75,0.75"],
                        help="head,ffn pairs, e.g. 0.5,0.5")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: batch 1, 3 rounds, 50%% only")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.sparsities = [1], 3, ["0.5,0.5"]
    args.sparsities = [tuple(float(x) for x in pair.split(",")) for pair in args.sparsities]
    args.command = "python scripts/bench_speed.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    payload = run(args)
    payload["wall_time_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "speed.md").write_text(to_markdown(payload))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
