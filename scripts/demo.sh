#!/usr/bin/env bash
# The README's main job: set up (or refresh) .venv, then run the offline MiniLM recipe end to end: dense fine-tuning
# of the embedded all-MiniLM-L6-v2 on 1,000 SST-2 sentences (a recorded member split), movement pruning of half the
# heads and FFN neurons with distillation, DeepWordBug and PWWS attacks and membership inference on both models,
# latency, and the report in runs/minilm-sst2-offline/report.md (about 10 minutes on 2 CPU cores). Running it again
# reuses the finished stages. Extra arguments go to `hfprune run` (--output-dir DIR, --threads N, --check, ...).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${HFPRUNE_VENV:-$root/.venv}/bin/hfprune" run recipes/minilm-sst2-offline.yaml "$@"
