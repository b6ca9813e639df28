"""scripts/bench_gpu.sh: its CPU mode runs the GPU check's code path on tiny shapes; without CUDA it skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([str(ROOT / "scripts" / "bench_gpu.sh"), *args], env=environment, capture_output=True,
                          text=True, timeout=120)


def test_quick_cpu_run_checks_masked_equals_compacted_and_times_against_the_flops_ideal(tmp_path):
    result = _bench("--device", "cpu", "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "gpu.json").read_text())
    assert payload["dtype"] == "bf16" and payload["device"].startswith("cpu")
    rows = payload["results"]
    assert [(r["arch"], r["batch"]) for r in rows] == [(a, b) for a in ("bert-base", "gpt2-small",
                                                                        "smollm2-135m-shape") for b in (1, 4)]
    for row in rows:
        assert row["masked_vs_compacted_rel_diff"] <= payload["rel_tolerance"] == 3e-2
        # 50% of heads and of FFN neurons removed in every layer: layer FLOPs halve (heads are query heads; the
        # Llama-shaped model prunes whole key/value groups of 3 query heads)
        assert row["heads_kept"] * 2 == row["heads_total"] and row["neurons_kept"] * 2 == row["neurons_total"]
        assert row["flops_ideal_speedup"] == pytest.approx(2.0)
        assert row["params_pruned"] < row["params_dense"]
        assert row["dense_ms"] > 0 and row["pruned_ms"] > 0
        assert row["speedup"] == pytest.approx(row["speedup_over_ideal"] * row["flops_ideal_speedup"])
    table = (tmp_path / "gpu.md").read_text()
    assert table.count("| smollm2-135m-shape |") == 2 and "wall clock" in table


def test_without_cuda_the_gpu_check_skips_in_one_line(tmp_path):
    result = _bench("--out", str(tmp_path / "gpu"), CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().count("\n") == 0 and "no CUDA GPU" in result.stdout
    assert not (tmp_path / "gpu").exists()
