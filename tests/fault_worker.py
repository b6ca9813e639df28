"""Worker processes the fault tests kill with SIGKILL (no cleanup handler runs, as with an OOM kill or a power cut of
the process). ``python fault_worker.py MODE OUT [ARG]``:

- ``train OUT STEP``: a pruning Trainer run (tiny BERT, checkpoint every 4 steps) that SIGKILLs itself at the end
  of optimizer step STEP; ``train OUT save-STEP``: the same, killed in the middle of writing checkpoint STEP
  (model and optimizer written, trainer state not yet); ``train OUT slow``: sleeps a little each step so the
  parent can kill it at a random time.
- ``save_pruned OUT`` / ``save_compressed OUT`` / ``export_dense OUT``: save a different model over the one in OUT
  with ``overwrite=True`` and SIGKILL itself after the new weights are half written.
- ``stage OUT``: recompute the finished stage OUT/stage (``--overwrite``) and die in the middle of it.
- ``sweep OUT MODEL_DIR``: a tiny two-level sweep that dies in the second level, after its model is trained.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MAX_STEPS, SAVE_STEPS = 24, 4


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pruning_trainer(out: Path, callbacks=()):
    """The run the fault tests interrupt and compare: masks update every 3 steps, checkpoints every 4."""
    from conftest import tiny_model
    from pruning_trainer_utils import synthetic_classification, training_args
    from transformers import Trainer

    from hfprune import MovementPruningCallback, PruningConfig

    model = tiny_model("bert", seed=0)
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=3, compact_on_train_end=False)
    args = training_args(out, max_steps=MAX_STEPS, save_strategy="steps", save_steps=SAVE_STEPS)
    return Trainer(model=model, args=args, train_dataset=synthetic_classification(),
                   callbacks=[MovementPruningCallback(config), *callbacks])


def train(out: Path, when: str) -> None:
    from transformers import Trainer, TrainerCallback

    class Fault(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if when == "slow":
                time.sleep(0.05)
            elif when.isdigit() and state.global_step == int(when):
                die()

    if when.startswith("save-"):
        step = int(when.removeprefix("save-"))
        real = Trainer._save_rng_state

        def dying_save_rng_state(self, output_dir):  # called after the weights, before trainer_state.json
            if self.state.global_step == step:
                die()
            return real(self, output_dir)

        Trainer._save_rng_state = dying_save_rng_state
    pruning_trainer(out, [Fault()]).train()


def save_over(out: Path, kind: str) -> None:
    """Save a different tiny model over ``out``; die once the new weights are half written."""
    import safetensors.torch
    import transformers.modeling_utils
    from conftest import tiny_model

    from hfprune.pruning import serialization

    real_save_file = safetensors.torch.save_file

    def half_then_die(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        die()

    transformers.modeling_utils.safe_save_file = half_then_die  # what save_pretrained calls
    serialization.save_file = half_then_die  # what save_compressed calls
    model = tiny_model("bert", seed=1)
    if kind == "save_pruned":
        serialization.save_pruned(model, out, overwrite=True)
    elif kind == "save_compressed":
        serialization.save_compressed(model, out, overwrite=True)
    else:
        serialization.export_dense(model, out, overwrite=True)


def stage(out: Path) -> None:
    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.stage_folder import run_stage

    def compute(staging: Path) -> StageResult:
        (staging / "model.bin").write_bytes(b"half a new model")
        die()

    old = StageResult.load(out / "stage")
    run_stage(out / "stage", old.fingerprint, compute, overwrite=True)


def sweep(out: Path, model_dir: Path) -> None:
    """Sweep levels 0.3 and 0.6; die once level 0.6's model is trained, before its done-marker."""
    from hfprune.pipeline import stages
    from hfprune.pipeline.sweep import run_sweep

    real = stages.prune_and_distill

    def prune_then_die(recipe, pruning, *args, **kwargs):
        result = real(recipe, pruning, *args, **kwargs)
        if pruning.head_sparsity == 0.6:
            die()
        return result

    stages.prune_and_distill = prune_then_die
    run_sweep(sweep_recipe(model_dir, out), SWEEP_LEVELS)


SWEEP_LEVELS = [0.3, 0.6]


def sweep_recipe(model_dir: Path, out: Path):
    """test_sweep's tiny recipe without the TextAttack audit (its import alone takes seconds)."""
    from helpers import tiny_payload

    from hfprune.recipes.schema import Recipe

    payload = tiny_payload(model_dir, out)
    payload["audits"]["robustness"] = {"enabled": False}
    payload["audits"]["latency_rounds"] = 0
    return Recipe.from_dict(payload)


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    if mode == "train":
        train(target, sys.argv[3])
    elif mode in ("save_pruned", "save_compressed", "export_dense"):
        save_over(target, mode)
    elif mode == "stage":
        stage(target)
    elif mode == "sweep":
        sweep(target, Path(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    raise SystemExit("the worker was expected to be killed")
