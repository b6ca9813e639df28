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
import itertools
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModel, BertConfig, GPT2Config

from hfprune import PruningConfig, prune, sparsity_report
from hfprune.utils.io import write_benchmark
from hfprune.utils.timing import interleaved_timings

ARCHS = {
    "bert-base": lambda: BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    intermediate_size=3072),
    "gpt2-small": lambda: GPT2Config(n_embd=768, n_layer=12, n_head=12),
    "minilm": lambda: BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
}


def measure(dense, pruned, floor, batch: int, seq_len: int, rounds: int) -> dict[str, float]:
    """Dense, pruned and ``floor`` (1 head and 1 FFN neuron per layer: what pruning cannot remove, i.e. embeddings,
    layer norms, residual adds, per-op dispatch) timed interleaved; medians and the median per-round ratio."""
    inputs = {"input_ids": torch.randint(100, 1000, (batch, seq_len)),
              "attention_mask": torch.ones(batch, seq_len, dtype=torch.long)}
    times = interleaved_timings({"dense": dense, "pruned": pruned, "floor": floor}, inputs, rounds)
    dense_times, pruned_times = times["dense"], times["pruned"]
    ratios = [d / p for d, p in zip(dense_times, pruned_times, strict=True)]
    return {"dense_ms": 1000 * statistics.median(dense_times), "pruned_ms": 1000 * statistics.median(pruned_times),
            "speedup": statistics.median(ratios), "floor_ms": 1000 * statistics.median(times["floor"])}


def floor_model(dense):
    floor = copy.deepcopy(dense)
    prune(floor, PruningConfig(head_sparsity=0.99, ffn_sparsity=0.999, scoring="random", allocation="per_layer"))
    return floor


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    results = []
    for arch in args.archs:
        torch.manual_seed(0)
        dense = AutoModel.from_config(ARCHS[arch]()).eval()
        floor = floor_model(dense)
        for (head_sparsity, ffn_sparsity), allocation, round_to in itertools.product(
                args.sparsities, args.allocations, args.ffn_round_to):
            pruned = copy.deepcopy(dense)
            structure = prune(pruned, PruningConfig(
                head_sparsity=head_sparsity, ffn_sparsity=ffn_sparsity, scoring="random", allocation=allocation,
                ffn_round_to=round_to))
            report = sparsity_report(pruned, seq_len=args.seq_len)
            ideal = report.flops_dense / report.flops
            for batch in args.batches:
                timing = measure(dense, pruned, floor, batch, args.seq_len, args.rounds)
                # Amdahl: only the time above the floor shrinks with the FLOPs
                fixed = timing["floor_ms"]
                amdahl = timing["dense_ms"] / (fixed + (timing["dense_ms"] - fixed) / ideal)
                row = {"arch": arch, "head_sparsity": head_sparsity, "ffn_sparsity": ffn_sparsity, "batch": batch,
                       "allocation": allocation, "ffn_round_to": round_to,
                       "heads_per_layer": [len(h) for h in structure.kept_heads],
                       "ffn_per_layer": [len(f) for f in structure.kept_neurons],
                       "seq_len": args.seq_len, "flops_ideal_speedup": ideal, **timing,
                       "speedup_over_ideal": timing["speedup"] / ideal, "amdahl_ideal_speedup": amdahl,
                       "speedup_over_amdahl": timing["speedup"] / amdahl, "params_dense": report.params_dense,
                       "params_pruned": report.params}
                print(json.dumps(row), flush=True)
                results.append(row)
    return {"command": args.command, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "results": results}


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}` (torch {payload['torch']}, {payload['threads']} threads, "
             f"{payload['rounds']} interleaved rounds, medians)", "",
             "| model | heads / FFN pruned | allocation | FFN round_to | batch | dense ms | pruned ms | speedup | "
             "FLOPs-ideal | measured / ideal | floor ms | Amdahl ideal | measured / Amdahl |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(f"| {r['arch']} | {r['head_sparsity']:.0%} / {r['ffn_sparsity']:.0%} | "
                     f"{r.get('allocation', 'per_layer')} | {r.get('ffn_round_to', 1)} | {r['batch']} | "
                     f"{r['dense_ms']:.1f} | {r['pruned_ms']:.1f} | {r['speedup']:.2f}x | "
                     f"{r['flops_ideal_speedup']:.2f}x | {r['speedup_over_ideal']:.2f} | "
                     f"{r.get('floor_ms', float('nan')):.1f} | {r.get('amdahl_ideal_speedup', float('nan')):.2f}x | "
                     f"{r.get('speedup_over_amdahl', float('nan')):.2f} |")
    lines += ["", "FFN widths per layer: "] + [
        f"- {r['arch']} {r['head_sparsity']:.0%}/{r['ffn_sparsity']:.0%} {r.get('allocation')} "
        f"round_to {r.get('ffn_round_to')}: heads {r.get('heads_per_layer')}, FFN {r.get('ffn_per_layer')}"
        for r in payload["results"] if r["batch"] == payload["results"][0]["batch"]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/speed"))
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--sparsities", nargs="+", default=["0.5,0.5", "0.75,0.75"],
                        help="head,ffn pairs, e.g. 0.5,0.5")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--allocations", nargs="+", default=["per_layer"], choices=["per_layer", "global"],
                        help="global: random scores ranked across layers, so layers keep uneven (odd) widths")
    parser.add_argument("--ffn-round-to", nargs="+", type=int, default=[1],
                        help="PruningConfig.ffn_round_to values to compare, e.g. 1 32")
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
    write_benchmark(args.out, "speed", payload, to_markdown(payload))


if __name__ == "__main__":
    main()
