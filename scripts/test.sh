#!/usr/bin/env bash
# Set up (or refresh) .venv, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${HFPRUNE_VENV:-$root/.venv}/bin/python" -m pytest -q "$@"
