"""scripts/bench_speed_decoder.py: its timed decode module (greedy steps on a fixed prompt's KV cache, cropped back
after each pass) decodes exactly what ``generate`` does, pass after pass, on a tiny random Llama with GQA."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import tiny_model
from helpers import load_script

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_speed_decoder.py"


def _bench_module():
    return load_script(SCRIPT)


def test_decode_steps_match_generate_and_restore_the_prompt_cache():
    bench = _bench_module()
    model = tiny_model("llama", "causal_lm", num_key_value_heads=2)
    prompt = torch.randint(3, 99, (1, 7), generator=torch.Generator().manual_seed(0))
    steps = bench.DecodeSteps(model, prompt, steps=3)
    generated = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4, do_sample=False,
                               use_cache=True, pad_token_id=0)
    assert torch.equal(steps.first[0], generated[0, 7:8])
    with torch.inference_mode():
        for _ in range(2):  # every timed pass decodes the same span from the same 7-position cache
            assert torch.equal(steps(steps.first)[0], generated[0, -1:])
            assert steps.cache.get_seq_length() == 7
