"""GPU check: one-shot pruning in bf16 on a CUDA device, masked == compacted logits, and prefill latency.

A BERT-base-sized, a GPT-2-small-sized and a Llama model with SmolLM2-135M's shapes (30 layers, hidden 576, 9 query /
3 key-value heads, FFN 1536) are built from configs with random weights (no downloads; latency does not depend on
the values), cast to the chosen precision and moved to the device. Each is pruned one-shot by weight magnitude (50%
of heads, 50% of FFN neurons): the logits of the masked model are compared with those of the compacted one, then
dense and compacted prefill forwards are timed interleaved (CUDA events after warm-up; medians, and the median of
per-round ratios) at batch 1 and 32, beside the FLOPs-ideal speedup of ``sparsity_report``. Writes gpu.json and
gpu.md.

    scripts/bench_gpu.sh                                   # on a CUDA machine: benchmarks/gpu/
    python scripts/bench_gpu.py --device cpu --quick --out /tmp/gpu   # the same code path, tiny shapes, on the CPU

Without CUDA (and without ``--device cpu``) it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, BertConfig, GPT2Config, LlamaConfig

from hfprune import PruningConfig, StructuredPruner, sparsity_report
from hfprune.utils.io import atomic_write_json, atomic_write_text
from hfprune.utils.timing import interleaved_timings

# name -> (model class, full-size config, tiny config for --quick); the tiny ones keep each family's head layout
ARCHS = {
    "bert-base": (AutoModelForMaskedLM,
                  lambda: BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072),
                  lambda: BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64)),
    "gpt2-small": (AutoModelForCausalLM,
                   lambda: GPT2Config(n_embd=768, n_layer=12, n_head=12),
                   lambda: GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64)),
    "smollm2-135m-shape": (AutoModelForCausalLM,
                           lambda: LlamaConfig(vocab_size=49152, hidden_size=576, num_hidden_layers=30,
                                               num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                                               max_position_embeddings=2048, tie_word_embeddings=True),
                           lambda: LlamaConfig(vocab_size=128, hidden_size=48, num_hidden_layers=2,
                                               num_attention_heads=6, num_key_value_heads=2, intermediate_size=64,
                                               max_position_embeddings=64, tie_word_embeddings=True)),
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# masked and compacted models sum the same kept products in a different order (other kernels, other shapes); relative
# to the largest logit the difference is a few roundings of the precision: bf16 has 8 significant bits (unit roundoff
# 2^-8 ~ 0.004); measured on the CPU at full size, seq 32: 0.011 (BERT), 0.011 (GPT-2), 0.014 (SmolLM2 shapes)
REL_TOLERANCE = {"bf16": 3e-2, "fp32": 1e-5}


def build(arch: str, quick: bool, dtype: torch.dtype, device: torch.device):
    model_cls, full, tiny = ARCHS[arch]
    torch.manual_seed(0)
    config = (tiny if quick else full)()
    config.attn_implementation = "sdpa"
    return model_cls.from_config(config).to(device=device, dtype=dtype).eval()


def prune_checked(dense, dtype_name: str, inputs: dict[str, torch.Tensor], config: PruningConfig) -> tuple:
    """Prune a copy of ``dense`` by magnitude; logits with masks attached vs after compaction, as max |difference|
    relative to the largest |logit|. Returns (compacted model, relative difference, sparsity report)."""
    pruned = copy.deepcopy(dense)
    pruner = StructuredPruner(pruned, config)
    pruner.update_masks(step=1, total_steps=1)
    dense_logits, masked = logits(dense, inputs), logits(pruned, inputs)
    pruner.compact()
    compacted = logits(pruned, inputs)
    relative = ((masked - compacted).abs().max() / masked.abs().max()).item()
    tolerance = REL_TOLERANCE[dtype_name]
    if not relative <= tolerance:
        raise AssertionError(f"masked and compacted logits differ by {relative:.2e} of the largest logit "
                             f"(tolerance {tolerance:.0e} in {dtype_name})")
    # the check means something only if the masks moved the logits well beyond the masked / compacted difference
    changed = ((dense_logits - masked).abs().max() / dense_logits.abs().max()).item()
    if not changed > 2 * relative:
        raise AssertionError(f"pruning moved the logits by {changed:.2e} of the largest, not more than twice the "
                             f"masked / compacted difference {relative:.2e}: the check is vacuous")
    return pruned, relative, sparsity_report(pruned, seq_len=inputs["input_ids"].shape[1])


def logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return model(**inputs).logits.float()


def token_inputs(batch: int, seq_len: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch)
    ids = torch.randint(3, vocab, (batch, seq_len), generator=generator)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def run(args: argparse.Namespace, device: torch.device) -> dict:
    dtype = DTYPES[args.dtype]
    config = PruningConfig(head_sparsity=args.head_sparsity, ffn_sparsity=args.ffn_sparsity, scoring="magnitude")
    results = []
    for arch in args.archs:
        dense = build(arch, args.quick, dtype, device)
        vocab = dense.config.vocab_size
        pruned, relative, report = prune_checked(dense, args.dtype, token_inputs(2, args.seq_len, vocab, device),
                                                 config)
        ideal = report.flops_dense / report.flops
        for batch in args.batches:
            inputs = token_inputs(batch, args.seq_len, vocab, device)
            times = interleaved_timings({"dense": dense, "pruned": pruned}, inputs, args.rounds, warmup=args.warmup)
            ratios = [d / p for d, p in zip(times["dense"], times["pruned"], strict=True)]
            row = {"arch": arch, "batch": batch, "seq_len": args.seq_len,
                   "dense_ms": 1000 * statistics.median(times["dense"]),
                   "pruned_ms": 1000 * statistics.median(times["pruned"]), "speedup": statistics.median(ratios),
                   "flops_ideal_speedup": ideal, "speedup_over_ideal": statistics.median(ratios) / ideal,
                   "masked_vs_compacted_rel_diff": relative, "heads_kept": report.heads_kept,
                   "heads_total": report.heads_total, "neurons_kept": report.neurons_kept,
                   "neurons_total": report.neurons_total, "params_dense": report.params_dense,
                   "params_pruned": report.params}
            print(json.dumps(row), flush=True)
            results.append(row)
        del dense, pruned
        if device.type == "cuda":
            torch.cuda.empty_cache()
    timer = "CUDA events" if device.type == "cuda" else "wall clock (perf_counter)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    return {"command": args.command, "device": f"{device.type}: {name}", "timer": timer, "dtype": args.dtype,
            "rel_tolerance": REL_TOLERANCE[args.dtype], "rounds": args.rounds, "warmup": args.warmup,
            "quick": args.quick, "torch": torch.__version__, "results": results}


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}` on {payload['device']} (torch {payload['torch']}, {payload['dtype']}, "
             f"{payload['timer']}, {payload['warmup']} warm-up passes, {payload['rounds']} interleaved rounds, "
             "medians). Masked vs compacted logits: max |difference| / max |logit|, tolerance "
             f"{payload['rel_tolerance']:.0e}.", "",
             "| model | heads kept | FFN neurons kept | batch | seq | dense ms | pruned ms | speedup | FLOPs-ideal | "
             "measured / ideal | masked vs compacted |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(f"| {r['arch']} | {r['heads_kept']}/{r['heads_total']} | {r['neurons_kept']}/{r['neurons_total']}"
                     f" | {r['batch']} | {r['seq_len']} | {r['dense_ms']:.2f} | {r['pruned_ms']:.2f} | "
                     f"{r['speedup']:.2f}x | {r['flops_ideal_speedup']:.2f}x | {r['speedup_over_ideal']:.2f} | "
                     f"{r['masked_vs_compacted_rel_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu runs the same code path (wall-clock timing), for tests; cuda is the check")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu"))
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--head-sparsity", type=float, default=0.5)
    parser.add_argument("--ffn-sparsity", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="tiny configs of the same families, batches 1 and 4, sequence 16, 3 rounds, 1 warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.seq_len, args.rounds, args.warmup = [1, 4], 16, 3, 1
    args.command = "python scripts/bench_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU on this machine; GPU checks skipped (--device cpu --quick runs the code path)")
        return 0
    device = torch.device(args.device)
    started = time.time()
    payload = run(args, device)
    payload["wall_time_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "gpu.json", payload)
    atomic_write_text(args.out / "gpu.md", to_markdown(payload))
    print(to_markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
