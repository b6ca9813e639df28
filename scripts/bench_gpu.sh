#!/usr/bin/env bash
# GPU check (issue #19): one-shot pruning in bf16 on CUDA, masked == compacted logits, dense vs pruned prefill
# latency at batch 1 and 32 against the FLOPs ideal, for BERT-base-, GPT-2-small- and SmolLM2-135M-shaped models.
# Writes benchmarks/gpu/gpu.{json,md}. Without a CUDA GPU it prints one line and exits 0.
#   scripts/bench_gpu.sh                          # the check, on a CUDA machine (a few minutes at most)
#   scripts/bench_gpu.sh --device cpu --quick --out /tmp/gpu   # the same code path on tiny shapes, on the CPU
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
cd "$root"
exec "$py" scripts/bench_gpu.py "$@"
