"""Many processes from one command (``torchrun`` / ``accelerate launch -m hfprune``, issue 19): the CLI on 2 CPU
processes (gloo) gives the masks and report of one process, only the main process writes, audits run once, a rerun
resumes; and the single-process pieces (``python -m hfprune``, refusals, batch splitting, per-process devices)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import minilm_tokenizer, tiny_payload
from pruning_trainer_utils import run_two_processes

from hfprune.cli.main import main
from hfprune.errors import ConfigError
from hfprune.pipeline.results import STAGE_FILE
from hfprune.pruning.structure import CONFIG_KEY
from hfprune.utils import distributed

# what may differ between a 1-process and a 2-process run: wall times and the folder the run was written to
VARYING = ("seconds", "output.dir")


@pytest.fixture(scope="module")
def launch_recipe(tmp_path_factory) -> Path:
    """A recipe on a tiny BERT without dropout: each process draws its own dropout masks, so only a model without
    dropout can train to the same weights on one process and on two. Movement scores (summed from the gradients
    the processes average), privacy audit on, no TextAttack (its import alone costs more than the run), no latency
    (a timing)."""
    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("launch")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=128, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    model.save_pretrained(root / "tiny")
    minilm_tokenizer().save_pretrained(root / "tiny")
    payload = tiny_payload(root / "tiny", root / "unused", head_sparsity=0.5, ffn_sparsity=0.5)
    payload["pruning"]["scoring"] = "movement"
    payload["audits"]["robustness"] = {"enabled": False}
    payload["audits"]["latency_rounds"] = 0
    (root / "recipe.yaml").write_text(yaml.safe_dump(payload))
    return root / "recipe.yaml"


def _flat(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}".lstrip(".")).items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def test_two_processes_match_one_write_only_on_the_main_process_and_resume(launch_recipe, tmp_path):
    """One launch of 2 CPU processes runs, in order: ``run``, the same ``run`` again (a rerun), ``sweep`` into the
    same folder (reusing its dense stage), ``finetune``, ``prune`` and ``run --seeds 0 1``; ``run`` is then repeated
    in one process."""
    out, one = tmp_path / "out", tmp_path / "one"
    two, tiny = out / "two", str(launch_recipe.parent / "tiny")
    run = ["run", str(launch_recipe), "--output-dir", str(two)]
    small = ["--model", tiny, "--train-samples", "32", "--batch-size", "16", "--max-length", "16", "--threads", "1"]
    commands = [run, run, ["sweep", str(launch_recipe), "--output-dir", str(two), "--sparsities", "0.5"],
                ["finetune", *small, "--output-dir", str(out / "finetune")],
                ["prune", *small, "--teacher-epochs", "1", "--prune-epochs", "1", "--output-dir", str(out / "prune")],
                [*run[:3], str(out / "seeds"), "--seeds", "0", "1"]]
    ranks = run_two_processes("ddp_cli_worker.py", tmp_path / "log", args=(str(out), json.dumps(commands)))
    assert main(["run", str(launch_recipe), "--output-dir", str(one)]) == 0

    first, rerun, sweep = ([rank["runs"][i] for rank in ranks] for i in range(3))
    assert [run["code"] for rank in ranks for run in rank["runs"]] == [0] * 12, \
        (tmp_path / "log" / "stderr.txt").read_text()[-4000:]
    # every process trains (its half of each batch); the main process alone evaluates and audits, once per model
    assert first[0]["calls"] == {"train_dense": 1, "prune_and_distill": 1, "evaluate_model": 2, "run_model_audit": 2}
    assert first[1]["calls"] == {"train_dense": 1, "prune_and_distill": 1}
    # the rerun resumes: nothing trained, evaluated or audited again, on either process; the sweep trains its level
    assert rerun[0]["calls"] == rerun[1]["calls"] == {}
    assert sweep[0]["calls"] == {"prune_and_distill": 1, "evaluate_model": 1, "run_model_audit": 1}
    assert sweep[1]["calls"] == {"prune_and_distill": 1}

    # rank 1 never changed anything in the output folders; it read the stage markers and dense model rank 0
    # published (safetensors weights are memory-mapped by Rust code, which the audit hook does not see)
    assert ranks[1]["writes"] == [] and len(ranks[0]["writes"]) > 50
    assert {str(two / p) for p in ("dense/stage.json", "pruned/stage.json", "dense/model/config.json",
                                    "dense/model/membership_split.json")} <= set(ranks[1]["reads"])
    for done in ("report.json", "levels/sparsity-0.50/stage.json", "sweep/report.md"):
        assert (two / done).is_file(), done
    for done in ("finetune/model.safetensors", "finetune/eval_results.json", "prune/pruned/model.safetensors",
                 "prune/report.json", "seeds/report.json", "seeds/seed-1/pruned/stage.json"):
        assert (out / done).is_file(), done

    # five pruning runs (run, the sweep's level, prune, two seeds), each with the same masks on both processes:
    # half of the 8 heads and 96 FFN neurons; run's are those one process chose
    assert len(ranks[0]["masks"]) == 5 and ranks[0]["masks"] == ranks[1]["masks"]
    assert all(sum(map(sum, m["heads"])) == 4 and sum(map(sum, m["neurons"])) == 48 for m in ranks[0]["masks"])
    kept = json.loads((one / "pruned" / "model" / "config.json").read_text())[CONFIG_KEY]
    assert ranks[0]["students"][0] == ranks[1]["students"][0] == kept
    assert json.loads((two / "pruned" / "model" / "config.json").read_text())[CONFIG_KEY] == kept

    # the same report: every count, name and verdict equal; measured numbers equal up to float summation order
    # (each process sums the loss of its 8 examples, DDP averages the two halves: the mean over 16 in another order)
    a, b = (_flat(json.loads((folder / "report.json").read_text())) for folder in (one, two))
    assert a.keys() == b.keys()
    compared = [k for k in a if not any(v in k for v in VARYING)]
    assert len(compared) > 500
    for key in compared:
        if isinstance(a[key], float) and not isinstance(b[key], bool):
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), (key, a[key], b[key])
        else:
            assert a[key] == b[key], key
    assert a["levels[0].quality.value"] == b["levels[0].quality.value"]
    assert a["levels[0].audit.privacy.membership[0].auc.value"] == b["levels[0].audit.privacy.membership[0].auc.value"]
    # the stage markers are those of one process: one process can resume a run two processes started, and back
    assert [json.loads((two / s / STAGE_FILE).read_text())["fingerprint"] for s in ("dense", "pruned")] == \
        [json.loads((one / s / STAGE_FILE).read_text())["fingerprint"] for s in ("dense", "pruned")]


def test_python_dash_m_hfprune_is_the_hfprune_command():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                    os.environ.get("PYTHONPATH")]))}
    module = subprocess.run([sys.executable, "-m", "hfprune", "--version"], capture_output=True, text=True, env=env)
    from hfprune import __version__

    assert module.returncode == 0 and module.stdout.strip() == f"hfprune {__version__}"


def _launched(monkeypatch, rank: int = 0, size: int = 2, local_rank: int | None = None) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(size))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank if local_rank is None else local_rank))


@pytest.mark.parametrize(("command", "env", "message"), [
    (["audit", "x", "--data", "glue/sst2", "--out", "y"], {},
     "hfprune audit: error: runs in one process; expected it without accelerate launch or torchrun (this is one "
     "of 2 launched processes); launchable: finetune, prune, run, sweep\n"),
    (["push", "x", "--repo-id", "a/b"], {}, "hfprune push: error: runs in one process"),
    (["run", "x.yaml"], {"ACCELERATE_USE_FSDP": "true"}, "hfprune run: error: FSDP (ACCELERATE_USE_FSDP from "
     "accelerate launch) is not supported (pruning scores and masks need full, unsharded weights on every "
     "process); supported: a single process or DDP"),
    (["sweep", "x.yaml"], {"ACCELERATE_USE_DEEPSPEED": "true"}, "hfprune sweep: error: DeepSpeed"),
])
def test_launched_commands_that_cannot_run_on_several_processes_are_refused_in_one_line(monkeypatch, capsys, command,
                                                                                      env, message):
    _launched(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    _launched(monkeypatch, rank=1)  # the other processes find the same and stop without repeating it
    assert main(command) == 2 and capsys.readouterr() == ("", "")


def test_a_follower_prints_nothing_and_stops_quietly_when_the_main_process_failed(monkeypatch, capsys):
    from hfprune.cli import run as run_command

    def failed(args):
        print("a table only the main process prints")
        raise distributed.MainProcessFailed("the main process (rank 0) failed: ConfigError: data.dataset: ...")

    monkeypatch.setattr(run_command, "run", failed)
    _launched(monkeypatch, rank=1)
    assert main(["run", "x.yaml"]) == 2
    assert capsys.readouterr() == ("", "")


def test_batches_split_between_processes_keep_the_global_batch(monkeypatch, tmp_path):
    from hfprune.training_args import TrainingSettings, check_batch_split, trainer_args

    settings = TrainingSettings(1.0, 16, 1e-3, 0)
    single = trainer_args(tmp_path, settings, args_class=dict, per_device_eval_batch_size=63)
    assert "accelerator_config" not in single and single["per_device_eval_batch_size"] == 63
    _launched(monkeypatch, size=3)
    with pytest.raises(ConfigError, match=r"^training.batch_size: expected a multiple of the 3 launched processes "
                                          r"\(each batch is split equally between them\), got 16$"):
        check_batch_split("training.batch_size", 16)
    with pytest.raises(ConfigError, match="TrainingSettings.batch_size: expected a multiple of the 3"):
        TrainingSettings(1.0, 16, 1e-3, 0)
    split = trainer_args(tmp_path, TrainingSettings(1.0, 12, 1e-3, 0), args_class=dict, per_device_eval_batch_size=64)
    # the recipe's batch stays the global batch (one process's steps and schedule); evaluation batches round up
    assert split["per_device_train_batch_size"] == 12 and split["accelerator_config"] == {"split_batches": True}
    assert split["per_device_eval_batch_size"] == 66


def test_each_process_of_a_gpu_launch_takes_its_own_gpu(monkeypatch):
    from hfprune.training_args import process_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert process_device("auto") == process_device("cuda") == "cuda"
    _launched(monkeypatch, rank=3, size=4, local_rank=1)
    assert process_device("auto") == "cuda:1" and process_device("cpu") == "cpu"


def test_reference_and_shadow_models_are_scored_on_the_device_passed(monkeypatch, tmp_path):
    """On a machine whose ``auto`` is another device (mps, patched in), ``device="cpu"`` keeps the reference on the
    CPU: the scores equal those of the same model scored directly there."""
    from helpers import tiny_bert

    from hfprune.audit.privacy.audit import (
        PrivacyAuditConfig,
        model_stats,
        pretrained_reference_stats,
        reference_stats,
    )
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.training_args import resolve_device

    tokenizer = minilm_tokenizer()
    model = tiny_bert()
    model.save_pretrained(tmp_path / "reference")
    tokenizer.save_pretrained(tmp_path / "reference")
    texts = ["a fine film", "dull and long", "a joy", "not good", "great acting", "boring plot"]
    audited = MembershipSplit("glue/sst2", "train", 0, [0, 1, 2], [3, 4, 5], texts[:3], texts[3:], [1, 0, 1],
                              [0, 1, 0], max_length=16, task="sequence-classification")
    MembershipSplit("glue/sst2", "train", 1, [10, 11], [12], texts[:2], texts[2:3], [1, 0], [1], max_length=16,
                    task="sequence-classification").save(tmp_path / "reference")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    placed = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: placed.append(str(a[0])) or self)
    config = PrivacyAuditConfig(n_resamples=0)
    (stats,) = reference_stats([tmp_path / "reference"], audited, config, device="cpu")
    pretrained = pretrained_reference_stats(str(tmp_path / "reference"), audited, config, device="cpu")
    assert placed == ["cpu", "cpu"]
    expected = model_stats(model.eval(), tokenizer, audited, config)
    for got in (stats, pretrained):
        assert torch.allclose(torch.as_tensor(got.loss), torch.as_tensor(expected.loss), atol=1e-6)


def test_one_process_runs_every_helper_in_place(tmp_path):
    assert not distributed.launched() and distributed.is_main()
    assert distributed.main_only(lambda: 41 + 1) == 42
    import contextlib

    @contextlib.contextmanager
    def folder():
        yield tmp_path / "staging"

    with distributed.main_writes(folder) as path:
        assert path == tmp_path / "staging"


def test_work_that_needs_every_process_is_refused_where_the_others_cannot_join(monkeypatch, tmp_path):
    """Instead of waiting forever: a stage naming no part for the other processes, and a Trainer built while only
    the main process works (inside main_only, the others waiting for its result)."""
    from hfprune.errors import HfpruneError
    from hfprune.pipeline.stage_folder import run_stage
    from hfprune.training_args import TrainingSettings, trainer_args

    _launched(monkeypatch)
    with pytest.raises(ConfigError, match=r"^pruned: this stage cannot run on 2 launched processes \(it names no "
                                          r"part for the other processes to train\); run it in one process$"):
        run_stage(tmp_path / "pruned", "f", lambda staging: None)
    assert not (tmp_path / "pruned").exists()
    with distributed.alone(), pytest.raises(HfpruneError, match="^a Trainer: needs every launched process, but "
                                                                "runs where only the main process works"):
        trainer_args(tmp_path, TrainingSettings(1.0, 16, 1e-3, 0), args_class=dict)
    monkeypatch.setenv("WORLD_SIZE", "1")  # in one process nothing waits: a Trainer anywhere is fine
    with distributed.alone():
        assert trainer_args(tmp_path, TrainingSettings(1.0, 16, 1e-3, 0), args_class=dict)["seed"] == 0


def test_a_launched_process_leaves_the_group_it_joined_before_the_interpreter_exits(tmp_path):
    """A launched hfprune process that exits holding its gloo group can die of SIGABRT during interpreter teardown
    (seen in CI: a finished 2-process run exited -6). The group hfprune formed is destroyed by an exit handler that
    runs while the interpreter is whole."""
    ranks = run_two_processes("ddp_exit_worker.py", tmp_path / "log")
    assert ranks == [{"received": [{"from": 0}], "group_at_exit": False}] * 2


def test_a_group_the_caller_formed_is_left_to_the_caller(monkeypatch, tmp_path):
    """``join`` under a group that already exists (an Accelerator or Trainer of the user's) joins nothing and
    registers no exit handler: destroying it would be the caller's call."""
    import atexit

    import torch.distributed as dist

    registered: list = []
    monkeypatch.setattr(atexit, "register", registered.append)
    _launched(monkeypatch)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        distributed.join("cpu")
        assert registered == [] and dist.is_initialized()
    finally:
        dist.destroy_process_group()
