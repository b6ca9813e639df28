#!/usr/bin/env bash
# The README's main job: set up (or refresh) .venv, then prune the embedded default (MiniLM on SST-2, offline)
# with movement scores while distilling from the dense model, and print the report. Extra arguments go to
# `hfprune prune` (see `hfprune prune --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${HFPRUNE_VENV:-$root/.venv}/bin/hfprune" prune "$@"
