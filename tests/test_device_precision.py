"""Device and precision in one place (issue 19): ``training.device`` / ``training.precision``, resolved by
``hfprune.training_args.resolve_device`` and mapped to TrainingArguments only by ``trainer_args``. No GPU here: the
device choice is tested with torch's availability checks monkeypatched; the defaults on this CPU-only machine must
give exactly the arguments hfprune built before these keys existed."""

from __future__ import annotations

import argparse

import pytest
import torch
from pruning_trainer_utils import pruning_callback, synthetic_classification
from transformers import Trainer, TrainingArguments

from hfprune import MovementPruningCallback, PruningConfig
from hfprune.cli.main import build_parser
from hfprune.cli.prune import build_config as prune_config
from hfprune.cli.run import recipe_overrides
from hfprune.errors import ConfigError
from hfprune.pruning.latency import measure_latency
from hfprune.recipes.schema import Recipe
from hfprune.training_args import TrainingSettings, resolve_device, trainer_args


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (True, False, "cuda"),
                                                       (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    assert resolve_device("auto") == expected
    assert resolve_device(TrainingSettings(1, 2, 1e-4, 0)) == expected  # anything with a device attribute
    assert resolve_device("cpu") == "cpu"


def _recipe(**training):
    return Recipe.from_dict({"model": {"name": "x"}, "training": training})


# on a CPU-only machine: what builds the config -> the start of its one-line error
REFUSED = [
    (lambda: TrainingSettings(1, 2, 1e-4, 0, device="cuda"),
     r"TrainingSettings\.device: 'cuda' is not available on this machine"),
    (lambda: _recipe(device="mps"), r"training\.device: 'mps' is not available"),
    (lambda: TrainingSettings(1, 2, 1e-4, 0, device="tpu"),
     r"TrainingSettings\.device: expected one of \['auto', 'cpu', 'cuda', 'mps'\], got 'tpu'"),
    (lambda: TrainingSettings(1, 2, 1e-4, 0, precision="int8"), r"TrainingSettings\.precision: expected one of"),
    (lambda: TrainingSettings(1, 2, 1e-4, 0, precision="fp16"), r"TrainingSettings\.precision: fp16 needs a GPU"),
    (lambda: _recipe(precision="fp16"), r"training\.precision: fp16 needs a GPU"),
    (lambda: prune_config(build_parser().parse_args(["prune", "--precision", "fp16"])),
     r"PruneClassifierConfig\.precision: fp16 needs a GPU"),
]


@pytest.mark.parametrize(("build", "message"), REFUSED)
def test_an_absent_or_unknown_device_and_fp16_on_the_cpu_are_errors_naming_the_field(monkeypatch, build, message):
    _machine(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ConfigError, match="^" + message):
        build()


def test_bf16_on_the_cpu_is_allowed(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    args = trainer_args("out", TrainingSettings(1, 2, 1e-4, 0, precision="bf16"))
    assert (args.use_cpu, args.bf16, args.fp16) == (True, True, False)


def test_defaults_on_a_cpu_only_machine_build_exactly_the_arguments_of_before(monkeypatch, tmp_path):
    """What ``trainer_args`` built before ``device`` / ``precision`` existed, field for field."""
    _machine(monkeypatch, cuda=False, mps=False)
    settings = TrainingSettings(2.0, 8, 3e-5, 7, weight_decay=0.01, warmup=0.1, logging_steps=20)
    before = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", num_train_epochs=2.0, per_device_train_batch_size=8,
        learning_rate=3e-5, weight_decay=0.01, warmup_steps=0.1, eval_strategy="no", save_strategy="no",
        logging_steps=20, seed=7, data_seed=7, dataloader_num_workers=0,
    )
    assert trainer_args(tmp_path, settings).to_dict() == before.to_dict()
    evaluation = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                   per_device_eval_batch_size=128)
    assert trainer_args(tmp_path, per_device_eval_batch_size=128).to_dict() == evaluation.to_dict()


def test_an_explicit_cpu_keeps_the_cpu_on_a_gpu_machine_and_auto_leaves_it(monkeypatch, tmp_path):
    """The mapping alone (TrainingArguments is not built: it would look for the GPU the test pretends to have)."""
    _machine(monkeypatch, cuda=True, mps=False)
    built = {}
    trainer_args(tmp_path, TrainingSettings(1, 2, 1e-4, 0, device="cpu"), args_class=lambda **kw: built.update(kw))
    assert built["use_cpu"] is True
    trainer_args(tmp_path, TrainingSettings(1, 2, 1e-4, 0, precision="fp16"), args_class=lambda **kw: built.update(kw))
    assert (built["use_cpu"], built["fp16"], "bf16" in built) == (False, True, False)
    trainer_args(tmp_path, device="auto", args_class=lambda **kw: built.update(kw))
    assert built["use_cpu"] is False


def test_recipe_fingerprint_ignores_default_device_and_precision_and_counts_others(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    plain, explicit = _recipe(), _recipe(device="auto", precision="fp32")
    assert "device" not in plain.result_dict()["training"] and "precision" not in plain.result_dict()["training"]
    assert plain.fingerprint() == explicit.fingerprint()
    bf16, cpu = _recipe(precision="bf16"), _recipe(device="cpu")
    assert len({plain.fingerprint(), bf16.fingerprint(), cpu.fingerprint()}) == 3


def test_the_dense_stage_is_redone_for_another_precision_or_device(monkeypatch):
    """The dense model is trained with the recipe's device and precision: changing them must not reuse it."""
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.utils.config import fingerprint

    _machine(monkeypatch, cuda=False, mps=False)
    dense = {name: fingerprint(RecipeRunner(recipe).dense_settings()) for name, recipe in
             (("plain", _recipe()), ("explicit", _recipe(device="auto", precision="fp32")),
              ("bf16", _recipe(precision="bf16")), ("cpu", _recipe(device="cpu")))}
    assert dense["plain"] == dense["explicit"]
    assert len({dense["plain"], dense["bf16"], dense["cpu"]}) == 3


def test_run_flags_override_the_recipe_only_when_given():
    args = build_parser().parse_args(["run", "r.yaml", "--device", "cpu", "--precision", "bf16"])
    assert recipe_overrides(args) == {"training.device": "cpu", "training.precision": "bf16"}
    assert recipe_overrides(build_parser().parse_args(["sweep", "r.yaml"])) == {}
    finetune = build_parser().parse_args(["finetune", "--device", "cpu"])
    assert (finetune.device, finetune.precision) == ("cpu", "fp32")
    assert build_parser().parse_args(["audit", "m", "--data", "d", "--out", "o"]).device == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune", "--device", "tpu"])


def test_bf16_built_by_trainer_args_prunes_with_float32_scores_and_masks(tmp_path):
    from conftest import tiny_model

    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2)
    args = trainer_args(tmp_path, TrainingSettings(1, 4, 1e-3, 0, precision="bf16", device="cpu"), max_steps=6,
                        disable_tqdm=True)
    assert args.bf16
    trainer = Trainer(model=tiny_model("bert"), args=args, train_dataset=synthetic_classification(),
                      callbacks=[MovementPruningCallback(config)])
    trainer.train()
    pruner = pruning_callback(trainer).pruner
    assert pruner.scored_steps == 6
    for kind in pruner.scores:
        assert all(s.dtype == torch.float32 and torch.isfinite(s).all() for s in pruner.scores[kind])
        assert all(m.dtype == torch.float32 for m in pruner.masks[kind])


def test_latency_reports_the_device_that_timed_it():
    from conftest import tiny_model

    dense = tiny_model("bert")
    latency = measure_latency(dense, tiny_model("bert", seed=1), seq_len=16, rounds=2)
    assert latency.device == "cpu" and latency.to_dict()["device"] == "cpu"


def test_parsers_offer_the_same_choices_everywhere():
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("run", "sweep", "prune", "finetune", "audit"):
        device = next(a for a in subparsers[command]._actions if a.dest == "device")
        assert sorted(device.choices) == ["auto", "cpu", "cuda", "mps"]
    for command in ("run", "sweep", "prune", "finetune"):
        precision = next(a for a in subparsers[command]._actions if a.dest == "precision")
        assert sorted(precision.choices) == ["bf16", "fp16", "fp32"]
