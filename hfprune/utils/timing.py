"""Interleaved forward timings: on a shared, noisy machine, models timed in rotating order within one process see
the same interference, so their per-round ratios are comparable where absolute milliseconds are not."""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn as nn


def forward_seconds(model: nn.Module, inputs: dict[str, torch.Tensor], inference_mode: bool = True) -> float:
    """Time of one forward pass without autograd (``inference_mode=False`` uses no_grad instead, which sparse
    CSR layers need): wall time on the CPU; on a CUDA device the GPU time between two CUDA events, after the queue
    has drained, since kernels run asynchronously and wall time would measure only their launch."""
    guard = torch.inference_mode() if inference_mode else torch.no_grad()
    device = next(iter(inputs.values())).device
    with guard:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            model(**inputs)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000
        started = time.perf_counter()
        model(**inputs)
        return time.perf_counter() - started


def interleaved_timings(models: dict[str, nn.Module], inputs: dict[str, torch.Tensor], rounds: int,
                        inference_mode: bool = True, warmup: int = 1) -> dict[str, list[float]]:
    """``rounds`` timings per model; each round runs every model once, the order rotated from round to round.
    ``warmup`` untimed passes per model first (allocator, oneDNN / MKL / cuBLAS caches, GPU clocks). Models run in
    eval mode and get their previous mode back."""
    names = list(models)
    modes = {name: models[name].training for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [models[n].train(modes[n]) for n in names])
        for name in names:
            models[name].eval()
            for _ in range(warmup):
                forward_seconds(models[name], inputs, inference_mode)
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(forward_seconds(models[name], inputs, inference_mode))
    return times
