"""MiniLM pruned to latency targets (issue #21): the predicted speedup against the measured one.

For each target and batch size: the real all-MiniLM-L6-v2 (a random classification head: latency does not depend on
it) is pruned one-shot with ``PruningConfig(latency_target=...)`` (magnitude scores, no data, no training) against a
latency table measured on this machine at that batch size (cached under ``--cache``), then the pruned model and the
dense one are timed interleaved on the table's setting (``hfprune.latency_report``). This is the first half of the
issue's benchmark (measured speedup against the target), not its accuracy comparison, which needs training.

    python scripts/bench_latency_targets.py --targets 2.0 --batches 1 --out benchmarks/latency_targets
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from hfprune import PruningConfig, latency_report, prune, resolve_model
from hfprune.pruning.latency_budget import LATENCY_TABLES
from hfprune.pruning.latency_table import latency_table
from hfprune.utils.io import atomic_write_json, atomic_write_text


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = AutoModelForSequenceClassification.from_pretrained(resolve_model("minilm"), num_labels=2).eval()
    results = []
    for batch in args.batches:
        for target in args.targets:
            started = time.time()
            # measured here (or read from the cache) with --table-rounds; prune() then reads it from the cache
            latency_table(dense, batch, args.seq_len, args.threads, rounds=args.table_rounds)
            pruned = copy.deepcopy(dense)
            prune(pruned, PruningConfig(latency_target=target, scoring="magnitude", latency_batch_size=batch,
                                        latency_seq_len=args.seq_len, latency_threads=args.threads,
                                        ffn_round_to=args.ffn_round_to, min_heads_per_layer=args.min_heads,
                                        min_neurons_per_layer=args.min_neurons))
            table = LATENCY_TABLES[pruned]
            report = latency_report(pruned, dense=dense, rounds=args.rounds)
            measured = report.measured
            # the same two models timed again: how far the measurement itself moves on this machine
            repeats = [latency_report(pruned, dense=dense, rounds=args.rounds).measured.speedup
                       for _ in range(args.repeat - 1)]
            row = {"target": target, "batch": batch, **report.to_dict(),
                   "measured_over_target": measured.speedup / target,
                   "repeated_measured_speedups": [measured.speedup, *repeats],
                   "table_dense_ms": table.dense_ms, "table_floor_ms": table.floor_ms,
                   "heads_per_layer": [len(h) for h in pruned.config.hfprune_structure["kept_heads"]],
                   "ffn_per_layer": [len(f) for f in pruned.config.hfprune_structure["kept_neurons"]],
                   "seconds": round(time.time() - started, 1), "load_average_1min": round(os.getloadavg()[0], 2)}
            print(json.dumps(row), flush=True)
            results.append(row)
    return {"command": args.command, "threads": args.threads, "rounds": args.rounds, "seq_len": args.seq_len,
            "table_rounds": args.table_rounds,
            "min_heads_per_layer": args.min_heads, "min_neurons_per_layer": args.min_neurons,
            "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2), "results": results}


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}` (torch {payload['torch']}, {payload['threads']} thread(s), seq "
             f"{payload['seq_len']}, {payload['rounds']} interleaved rounds, medians (table: "
             f"{payload.get('table_rounds', 10)} rounds per width); wall time "
             f"{payload.get('wall_time_s')} s; {payload.get('cpus')} CPUs, 1-min load average "
             f"{payload.get('load_average_1min_at_start')} at the start, "
             f"{', '.join(str(r.get('load_average_1min')) for r in payload['results'])} after each row). "
             "One-shot magnitude pruning, no training: not the "
             "issue's accuracy comparison.", "",
             "| target | batch | predicted | measured | measured / target | dense ms | pruned ms | table floor ms | "
             "same models re-measured |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(f"| {r['target']:.1f}x | {r['batch']} | {r['predicted_speedup']:.2f}x | "
                     f"{r['measured']['speedup']:.2f}x | {r['measured_over_target']:.2f} | "
                     f"{r['measured']['dense_ms']:.1f} | {r['measured']['pruned_ms']:.1f} | "
                     f"{r['table_floor_ms']:.1f} | "
                     f"{', '.join(f'{x:.2f}x' for x in r['repeated_measured_speedups'])} |")
    lines += ["", "Widths per layer:"] + [
        f"- {r['target']:.1f}x batch {r['batch']}: heads {r['heads_per_layer']}, FFN {r['ffn_per_layer']}"
        for r in payload["results"]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/latency_targets"))
    parser.add_argument("--targets", nargs="+", type=float, default=[2.0, 3.0])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--table-rounds", type=int, default=10, help="interleaved rounds per width of the table")
    parser.add_argument("--ffn-round-to", type=int, default=1)
    parser.add_argument("--min-heads", type=int, default=1, help="min_heads_per_layer (0: attention blocks may go)")
    parser.add_argument("--min-neurons", type=int, default=1, help="min_neurons_per_layer (0: FFN blocks may go)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time the same dense and pruned models this many times (measurement noise)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="latency table cache folder (sets HFPRUNE_CACHE_DIR); default: hfprune's cache")
    args = parser.parse_args(argv)
    if args.cache is not None:
        os.environ["HFPRUNE_CACHE_DIR"] = str(args.cache)
    args.command = "python scripts/bench_latency_targets.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    load_at_start = round(os.getloadavg()[0], 2)
    payload = run(args)
    payload["load_average_1min_at_start"] = load_at_start
    payload["wall_time_s"] = round(time.time() - started, 1)
    atomic_write_json(args.out / "results.json", payload)
    atomic_write_text(args.out / "results.md", to_markdown(payload))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
