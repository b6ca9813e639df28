"""Interleaved timings."""

from __future__ import annotations

import torch
from conftest import tiny_model

from hfprune.utils.timing import interleaved_timings


def test_interleaved_timings_time_every_model_each_round_and_restore_modes(tiny_inputs):
    calls: list[str] = []
    models = {name: tiny_model("bert").train() for name in ("a", "b", "c")}
    for name, model in models.items():
        model.register_forward_pre_hook(lambda module, args, name=name: calls.append(name))
    times = interleaved_timings(models, tiny_inputs, rounds=3)
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t > 0 for values in times.values() for t in values)
    # one warm-up each, then rounds in rotated order
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(model.training for model in models.values())
    assert not torch.is_inference_mode_enabled()


def test_warmup_passes_run_before_the_timed_rounds(tiny_inputs):
    calls: list[str] = []
    models = {name: tiny_model("bert") for name in ("a", "b")}
    for name, model in models.items():
        model.register_forward_pre_hook(lambda module, args, name=name: calls.append(name))
    times = interleaved_timings(models, tiny_inputs, rounds=2, warmup=3)
    assert {name: len(values) for name, values in times.items()} == {"a": 2, "b": 2}
    assert calls == ["a", "a", "a", "b", "b", "b", "a", "b", "b", "a"]
