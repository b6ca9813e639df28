"""scripts/bench_llm_peers.py on a tiny random Llama with grouped-query attention (9 query heads in 3 key/value
groups): the windows, the perplexity against the model's own loss, the matched parameter target, an hfprune job end
to end (plain ``from_pretrained`` reload with the same logits) and, where benchmarks/peers/.venv exists, the
Torch-Pruning FFN job."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_llm_peers.py"
PEERS_PYTHON = ROOT / "benchmarks" / "peers" / ".venv" / "bin" / "python"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def gqa_config(**overrides):
    from transformers import AutoConfig

    fields = dict(vocab_size=99, hidden_size=144, num_hidden_layers=2, num_attention_heads=9, num_key_value_heads=3,
                  head_dim=16, intermediate_size=48, max_position_embeddings=64, tie_word_embeddings=False,
                  attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return AutoConfig.for_model("llama", **{**fields, **overrides})


def gqa_model(seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(gqa_config(**overrides)).eval()


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    """A tiny GQA Llama saved with a tokenizer, and a data file of random token windows (2 steps of batch 4)."""
    from helpers import minilm_tokenizer

    root = tmp_path_factory.mktemp("llm-peers")
    gqa_model(intermediate_size=96).save_pretrained(root / "dense")
    minilm_tokenizer().save_pretrained(root / "dense")
    generator = torch.Generator().manual_seed(0)
    test = torch.randint(3, 99, (6, 12), generator=generator)
    torch.save({"train": torch.randint(3, 99, (8, 12), generator=generator), "test": test, "probe": test[:2]},
               root / "data.pt")
    return root


def test_window_nll_matches_the_models_own_loss(bench):
    model = gqa_model()
    windows = torch.randint(3, 99, (5, 10), generator=torch.Generator().manual_seed(1))
    nll = bench.window_nll(model, windows, batch_size=2)
    with torch.no_grad():
        expected = [float(model(input_ids=w[None], labels=w[None]).loss) for w in windows]
    np.testing.assert_allclose(nll, expected, rtol=1e-5)
    result = bench.perplexity(nll)
    assert result["perplexity"] == pytest.approx(math.exp(np.mean(expected)), rel=1e-5)
    assert result["ci_low"] < result["perplexity"] < result["ci_high"]


def test_token_windows_are_disjoint_slices_in_order(bench):
    from helpers import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    texts = [f"line {i} of a small corpus with words {i * 7}" for i in range(40)] + ["", "  "]
    windows = bench.token_windows(texts, tokenizer, seq_len=8, count=5, seed=0)
    ids = tokenizer("\n\n".join(t for t in texts if t.strip()))["input_ids"]
    starts = [next(s for s in range(0, len(ids) - 7, 8) if ids[s:s + 8] == w.tolist()) for w in windows]
    assert windows.shape == (5, 8) and starts == sorted(set(starts))
    with pytest.raises(ValueError, match="--windows"):
        bench.token_windows(texts, tokenizer, seq_len=8, count=10_000, seed=0)


def test_matched_ffn_ratio_removes_as_many_layer_parameters(bench):
    """Torch-Pruning keeps int(width * (1 - ratio)) FFN neurons; at the matched ratio the FFN-only model has exactly
    the decoder-layer parameters of the target (a third of the query heads and of the FFN neurons)."""
    from hfprune.pruning import PruningConfig, prune

    config = gqa_config(intermediate_size=96)
    target = gqa_model(intermediate_size=96)
    prune(target, PruningConfig(head_sparsity=1 / 3, ffn_sparsity=1 / 3, scoring="magnitude", allocation="uniform",
                                head_granularity="query"))
    assert bench.shapes(target) == {"query_heads": [6, 6], "kv_heads": [3, 3], "ffn": [64, 64]}
    ratio = bench.matched_ffn_ratio(config, 1 / 3, 1 / 3)
    kept = int(config.intermediate_size * (1 - ratio))
    assert kept == 96 - 32 - 32  # a third of the FFN, and 3 heads x (16 q_proj rows + 16 o_proj columns) / 3
    assert bench.layer_params(gqa_model(intermediate_size=kept)) == bench.layer_params(target)
    ffn_only = gqa_model(intermediate_size=96)  # the hfprune FFN-only row: the same count through hfprune's rounding
    prune(ffn_only, PruningConfig(head_sparsity=0.0, ffn_sparsity=bench.matched_ffn_neurons(config, 1 / 3, 1 / 3) / 96,
                                  scoring="magnitude", allocation="uniform"))
    assert bench.shapes(ffn_only)["ffn"] == [kept, kept]


def test_hfprune_job_saves_a_plainly_loadable_model(bench, job_inputs, tmp_path):
    job = bench.Job(method="hfprune-snip-momentum-kd", model_dir=str(job_inputs / "dense"),
                    data_path=str(job_inputs / "data.pt"), out_dir=str(tmp_path / "row"))
    bench.run_job(job)
    info = json.loads((tmp_path / "row" / "info.json").read_text())
    assert info["steps"] == 2 and len(info["losses"]) == 2
    model, diff = bench.plain_reload(tmp_path / "row" / "model", torch.load(tmp_path / "row" / "probe.pt"))
    assert diff < 1e-5
    found = bench.shapes(model)
    # query granularity: 6 query heads as 3 groups of 2 or 2 whole groups of 3, whichever scores higher
    assert found["query_heads"] == [6, 6] and found["kv_heads"] in ([3, 3], [2, 2]) and found["ffn"] == [64, 64]


def test_failure_reads_the_stack_of_a_stopped_job(bench):
    log = "\n".join(["warning", "Timeout (0:01:00)!", "Thread 0x1 (most recent call first):",
                     '  File "/x/threading.py", line 1 in run',
                     "Thread 0x2 (most recent call first):",
                     '  File "/v/site-packages/torch_pruning/dependency/graph.py", line 241 in _fix',
                     f'  File "{bench.__file__}", line 302 in _torch_pruning'])
    assert bench.failure(log, 60) == ("no result after 60 s; it was in: torch_pruning/dependency/graph.py, line 241 "
                                      "in _fix < scripts/bench_llm_peers.py, line 302 in _torch_pruning")
    assert bench.failure("a\nTraceback\nValueError: bad", 60) == "a | Traceback | ValueError: bad"


@pytest.mark.skipif(not PEERS_PYTHON.is_file(), reason="benchmarks/peers/.venv absent (scripts/setup_peers_env.sh)")
@pytest.mark.parametrize("method", ["tp-ffn-matched", "tp-ffn-matched-kd"])
def test_torch_pruning_ffn_job_matches_the_target(bench, job_inputs, tmp_path, method):
    """In the peers' venv: Torch-Pruning removes FFN neurons only, as many parameters as the target, keeps the
    hidden width, and its saved model loads with plain from_pretrained and the same logits."""
    job = bench.Job(method=method, model_dir=str(job_inputs / "dense"),
                    data_path=str(job_inputs / "data.pt"), out_dir=str(tmp_path / "row"), hang_seconds=120)
    (tmp_path / "row").mkdir()
    (tmp_path / "row" / "job.json").write_text(json.dumps(dataclasses.asdict(job)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(PEERS_PYTHON), str(SCRIPT), "--job", str(tmp_path / "row" / "job.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    model, diff = bench.plain_reload(tmp_path / "row" / "model", torch.load(tmp_path / "row" / "probe.pt"))
    assert diff < 1e-5
    assert bench.shapes(model) == {"query_heads": [9, 9], "kv_heads": [3, 3], "ffn": [32, 32]}
    assert model.config.hidden_size == 144
    info = json.loads((tmp_path / "row" / "info.json").read_text())
    assert info["steps"] == 2 and info["notes"].endswith("with distillation" if method.endswith("-kd")
                                                         else "without distillation")
    assert "FFN only" in info["notes"]
