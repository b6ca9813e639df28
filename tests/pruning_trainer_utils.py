"""Helpers for Trainer-based pruning tests: a learnable synthetic task and short training arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments


def synthetic_classification(n: int = 64, length: int = 12, seed: int = 0) -> Dataset:
    """Random token ids; the label is whether token 7 occurs, so the task is learnable by attention."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (n, length), generator=generator)
    ids[: n // 2, 3] = 7
    labels = (ids == 7).any(dim=1).long()
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                              "labels": labels.tolist()})


def training_args(output_dir, cls: type[TrainingArguments] = TrainingArguments, **overrides) -> TrainingArguments:
    defaults = dict(output_dir=str(output_dir), per_device_train_batch_size=4, learning_rate=1e-3, max_steps=20,
                    use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no", seed=0,
                    disable_tqdm=True, dataloader_num_workers=0)
    defaults.update(overrides)
    return cls(**defaults)


def pruning_callback(trainer: Trainer):
    """The (possibly checkpoint-restored) pruning callback of a trainer."""
    from hfprune import MovementPruningCallback

    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, MovementPruningCallback))


class StopAt(TrainerCallback):
    """Stops training after ``step`` optimizer steps, as a kill would (checkpoints already written stay)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def run_two_processes(worker: str, out, args: tuple[str, ...] = ()) -> list[dict]:
    """Launch ``worker`` (a script beside the tests) on 2 CPU processes with torch.distributed.run (gloo), with
    ``out`` and then ``args`` as its arguments, and return what each rank wrote to ``out/rank{r}.json`` (the
    launch's stderr is kept in ``out/stderr.txt``).
    ``--standalone`` takes a free port, so suites running side by side on one host do not collide."""
    here = Path(__file__).parent
    # the caller's PYTHONPATH stays after the tests folder, so the workers import the same hfprune as the tests
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(here / worker), str(out), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (Path(out) / "stderr.txt").write_text(result.stderr)  # for the caller's own assertions on what a rank printed
    return [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in (0, 1)]


def count_calls(monkeypatch, module, *names: str) -> dict[str, int]:
    """Wrap ``module.<name>`` for each name so every call is counted (and still made); returns the live counts."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(module, name)

        def counted(*args, _name=name, _real=real, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return calls
