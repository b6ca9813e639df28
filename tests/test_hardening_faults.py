"""Faults: a process SIGKILLed (no handler runs) in the middle of a pruning run, of a save, of a recipe stage or of a
sweep level. A resumed run ends with exactly the masks of an uninterrupted one, a killed save leaves the previous
model loadable with identical logits, and a killed sweep level is redone while finished levels are reused.

The victims are subprocesses running tests/fault_worker.py on tiny models; each test takes a few seconds, most of
it the worker's start-up (importing torch and transformers).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from fault_worker import MAX_STEPS, SAVE_STEPS, SWEEP_LEVELS, pruning_trainer, sweep_recipe
from pruning_trainer_utils import count_calls, pruning_callback
from transformers.trainer_utils import get_last_checkpoint

from hfprune.pruning.units import UnitKind
from hfprune.training import last_checkpoint

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "fault_worker.py"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_worker(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the worker to its death; it must die of SIGKILL (returncode -9), not finish or fail."""
    result = subprocess.run([sys.executable, str(WORKER), *map(str, args)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return result


def _masks_and_scores(pruner) -> dict[str, list[torch.Tensor]]:
    return {f"{kind.value}-{what}": [t.detach().clone() for t in getattr(pruner, what)[kind]]
            for kind in (UnitKind.HEADS, UnitKind.NEURONS) for what in ("masks", "scores")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, list[torch.Tensor]]:
    """Masks and scores at the end of the run nobody killed."""
    trainer = pruning_trainer(tmp_path_factory.mktemp("uninterrupted"))
    trainer.train()
    return _masks_and_scores(pruning_callback(trainer).pruner)


def _resume(out: Path) -> dict[str, list[torch.Tensor]]:
    checkpoint = last_checkpoint(out)
    assert checkpoint is not None
    trainer = pruning_trainer(out)
    trainer.train(resume_from_checkpoint=checkpoint)
    assert trainer.state.global_step == MAX_STEPS
    return _masks_and_scores(pruning_callback(trainer).pruner)


def _assert_same_run(expected: dict, got: dict) -> None:
    for key in expected:
        for a, b in zip(expected[key], got[key], strict=True):
            if key.endswith("masks"):
                assert torch.equal(a, b), key  # the units kept: exactly the same
            else:
                assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), key
    kept_heads = sum(int(m.sum()) for m in got["heads-masks"])
    assert 0 < kept_heads < 8  # the schedule had started pruning: the comparison is not vacuous


def test_sigkill_at_a_random_step_then_resume_ends_with_the_same_masks(tmp_path, uninterrupted):
    step = random.Random(9).randint(SAVE_STEPS + 1, MAX_STEPS - 1)  # after at least one checkpoint
    run_worker("train", tmp_path, step)
    assert Path(last_checkpoint(tmp_path)).name == f"checkpoint-{step // SAVE_STEPS * SAVE_STEPS}"
    _assert_same_run(uninterrupted, _resume(tmp_path))


def test_sigkill_at_a_random_time_then_resume_ends_with_the_same_masks(tmp_path, uninterrupted):
    """The parent kills the worker asynchronously, at a seeded random delay after its first checkpoint."""
    worker = subprocess.Popen([sys.executable, str(WORKER), "train", str(tmp_path), "slow"], cwd=ROOT, env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / f"checkpoint-{SAVE_STEPS}" / "trainer_state.json").is_file():
            assert worker.poll() is None, worker.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(random.Random(3).uniform(0.0, 1.0))  # ~20 steps of 0.1 s remain
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    assert last_checkpoint(tmp_path) is not None
    _assert_same_run(uninterrupted, _resume(tmp_path))


def test_kill_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path, uninterrupted):
    run_worker("train", tmp_path, "save-8")
    partial = tmp_path / "checkpoint-8"
    assert (partial / "model.safetensors").is_file() and not (partial / "trainer_state.json").exists()
    assert get_last_checkpoint(str(tmp_path)) == str(partial)  # transformers' helper would pick the broken one
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    _assert_same_run(uninterrupted, _resume(tmp_path))


def test_last_checkpoint_skips_a_cut_short_trainer_state(tmp_path):
    for step in (4, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_step": 8, "log_hi')
    (tmp_path / "checkpoint-12").mkdir()  # the save had barely begun
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert last_checkpoint(tmp_path / "missing") is None


# --------------------------------------------------------------------------------------------------------- saves
def _saver_and_loader(kind: str):
    from transformers import AutoModelForSequenceClassification

    from hfprune.pruning import serialization

    if kind == "export_dense":
        return serialization.export_dense, AutoModelForSequenceClassification.from_pretrained
    if kind == "save_compressed":
        return serialization.save_compressed, serialization.load_compressed
    return serialization.save_pruned, serialization.load_pruned


@pytest.mark.parametrize("kind", ["save_pruned", "save_compressed", "export_dense"])
def test_kill_during_a_save_leaves_the_previous_model_loadable(kind, tmp_path, tiny_inputs):
    save, load = _saver_and_loader(kind)
    out = tmp_path / "model"
    model = tiny_model("bert", seed=0)
    save(model, out)
    with torch.no_grad():
        expected = load(out).eval()(**tiny_inputs).logits
    files_before = sorted(p.name for p in out.iterdir())

    run_worker(kind, out)  # saves a different model (seed 1) over it and dies with its weights half written

    assert sorted(p.name for p in out.iterdir()) == files_before
    with torch.no_grad():
        assert torch.equal(load(out).eval()(**tiny_inputs).logits, expected)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(leftovers) == 1  # the dead process's staging folder...
    save(tiny_model("bert", seed=2), out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # ...is removed by the next save


def test_kill_while_recomputing_a_stage_keeps_the_finished_one(tmp_path):
    from hfprune.pipeline.results import STAGE_FILE, StageResult
    from hfprune.pipeline.stage_folder import run_stage

    def compute(staging: Path) -> StageResult:
        (staging / "model.bin").write_bytes(b"the finished model")
        return StageResult(name="stage", kind="dense", level=None, fingerprint="f" * 16, settings={}, model_dir="",
                           quality={"value": 0.75}, sparsity={}, audit={}, seconds={})

    run_stage(tmp_path / "stage", "f" * 16, compute)
    marker = (tmp_path / "stage" / STAGE_FILE).read_bytes()

    run_worker("stage", tmp_path)  # --overwrite: recomputes the stage, dies half-way

    assert (tmp_path / "stage" / STAGE_FILE).read_bytes() == marker
    assert (tmp_path / "stage" / "model.bin").read_bytes() == b"the finished model"
    assert StageResult.load(tmp_path / "stage").quality == {"value": 0.75}
    assert len(list(tmp_path.glob(".stage.staging-*"))) == 1
    run_stage(tmp_path / "stage", "f" * 16, compute, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["stage"]  # the dead run's staging folder is gone


# --------------------------------------------------------------------------------------------------------- sweep
def test_sweep_killed_mid_level_resumes_without_redoing_finished_levels(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hfprune.models import resolve_model
    from hfprune.pipeline import stages
    from hfprune.pipeline.results import STAGE_FILE
    from hfprune.pipeline.sweep import run_sweep
    from hfprune.utils.lock import LOCK_FILE, lock_holder

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-bert"
    BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=128, num_labels=2)).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(resolve_model("minilm")).save_pretrained(model_dir)
    out = tmp_path / "run"

    result = run_worker("sweep", out, model_dir)  # dense stage and level 0.3 finish; killed inside level 0.6

    finished = out / "levels" / "sparsity-0.30" / STAGE_FILE
    assert finished.is_file() and (out / "dense" / STAGE_FILE).is_file()
    assert not (out / "levels" / "sparsity-0.60").exists()
    assert [p.name for p in (out / "levels").iterdir() if p.name.startswith(".sparsity-0.60.staging-")]
    assert (out / LOCK_FILE).is_file() and lock_holder(out) not in (None, os.getpid())  # the dead run's PID
    assert "Traceback" not in result.stderr
    stamps = {p: p.stat().st_mtime_ns for p in (finished, out / "dense" / STAGE_FILE)}

    calls = count_calls(monkeypatch, stages, "train_dense", "prune_and_distill")
    resumed = run_sweep(sweep_recipe(model_dir, out), SWEEP_LEVELS)  # the dead run's lock is gone with it

    assert resumed.computed == ["levels/sparsity-0.60"]
    assert calls == {"train_dense": 0, "prune_and_distill": 1}  # only the killed level ran again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(p.name for p in (out / "levels").iterdir()) == ["sparsity-0.30", "sparsity-0.60"]
    assert [stage.name for stage in resumed.levels] == ["sparsity-0.30", "sparsity-0.60"]
    assert resumed.levels[1].sparsity["heads_kept"] < resumed.levels[0].sparsity["heads_kept"]
