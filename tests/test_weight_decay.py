"""Weight decay is one setting, ``TrainingSettings.weight_decay``, that every entry point exposes with its own default:
0.01 for ``hfprune prune`` and ``finetune``, 0.0 for recipes, the values their results were measured with (issue 15).
Each test checks the value in the ``TrainingArguments`` a Trainer was actually built with."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import tiny_payload

from hfprune.errors import ConfigError
from hfprune.pipeline.prune_classifier import PruneClassifierConfig
from hfprune.recipes.schema import Recipe


class _Stop(Exception):
    """Raised by the patched ``train``: the arguments are recorded, no training is needed."""


@pytest.fixture
def trained_with(monkeypatch):
    """The ``weight_decay`` of every Trainer whose ``train`` is called (which then stops the run)."""
    from transformers import Trainer

    seen: list[float] = []

    def train(self, *args, **kwargs):
        seen.append(self.args.weight_decay)
        raise _Stop

    monkeypatch.setattr(Trainer, "train", train)
    return seen


@pytest.mark.parametrize("command", ["prune", "finetune"])
def test_prune_and_finetune_take_weight_decay_from_a_flag_defaulting_to_0_01(command):
    from hfprune.cli import finetune, prune
    from hfprune.cli.main import build_parser

    build = {"prune": prune.build_config, "finetune": finetune.build_config}[command]
    assert build(build_parser().parse_args([command])).weight_decay == 0.01
    assert build(build_parser().parse_args([command, "--weight-decay", "0.05"])).weight_decay == 0.05
    with pytest.raises(ConfigError, match=r"\.weight_decay: expected a finite number >= 0, got -1\.0"):
        build(build_parser().parse_args([command, "--weight-decay", "-1"]))


def test_finetune_trains_with_its_weight_decay(tiny_model_dir, tmp_path, trained_with):
    from hfprune.training import FinetuneConfig, finetune_classifier

    with pytest.raises(_Stop):
        finetune_classifier(FinetuneConfig(model=str(tiny_model_dir), train_samples=8, max_length=16, threads=1,
                                           weight_decay=0.05, output_dir=str(tmp_path / "out")))
    assert trained_with == [0.05]
    assert not (tmp_path / "out").exists()  # nothing published by a run that stopped


def test_a_recipe_defaults_to_0_and_keeps_the_fingerprints_of_runs_recorded_before_the_key(tmp_path):
    from hfprune.pipeline.runner import RecipeRunner

    payload = tiny_payload(tmp_path / "model", tmp_path / "out")
    default = Recipe.from_dict(payload)
    assert default.training.weight_decay == 0.0
    assert "weight_decay" not in default.result_dict()["training"]  # so the fingerprint is the one recorded before
    assert "weight_decay" not in RecipeRunner(default).dense_settings()["training"]
    decayed = Recipe.from_dict({**payload, "training": {**payload["training"], "weight_decay": 0.01}})
    assert decayed.fingerprint() != default.fingerprint()
    assert RecipeRunner(decayed).dense_settings()["training"]["weight_decay"] == 0.01
    with pytest.raises(ConfigError, match=r"^training\.weight_decay: expected a finite number >= 0"):
        Recipe.from_dict({**payload, "training": {**payload["training"], "weight_decay": -0.5}})


@pytest.mark.parametrize("distill", [True, False])
def test_a_recipe_prunes_with_its_weight_decay(tiny_model_dir, tmp_path, trained_with, distill):
    import datasets

    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.pipeline.stages import distill_pruned

    payload = tiny_payload(tiny_model_dir, tmp_path / "out")
    recipe = Recipe.from_dict({**payload, "training": {**payload["training"], "weight_decay": 0.05},
                               "distillation": {"enabled": distill}})
    tokenizer = load_tokenizer(tiny_model_dir)
    train = datasets.Dataset.from_dict({**tokenizer(["good", "bad"]), "labels": [1, 0]})
    teacher = load_model_for_task(tiny_model_dir, "sequence-classification")
    with pytest.raises(_Stop):
        distill_pruned(recipe, recipe.pruning, teacher, tokenizer, train, tmp_path / "scratch")
    assert trained_with == [0.05]
    assert not (tmp_path / "scratch").exists()


@pytest.mark.parametrize("task", ["sequence-classification", "causal-lm"])
def test_a_recipe_trains_the_dense_model_with_its_weight_decay(tmp_path, monkeypatch, task):
    from hfprune.pipeline import stages

    seen = []
    target = "hfprune.audit.privacy.classifier.finetune_on_members" if task == "sequence-classification" else (
        "hfprune.audit.privacy.lm.train_canary_lm")
    monkeypatch.setattr(target, lambda config, **_: seen.append(config.weight_decay))
    payload = tiny_payload(tmp_path / "model", tmp_path / "out")
    payload["model"] = {"name": None, "task": "causal-lm"} if task == "causal-lm" else payload["model"]
    payload["data"]["dataset"] = "jane_austen" if task == "causal-lm" else "glue/sst2"
    payload["audits"]["robustness"]["enabled"] = task != "causal-lm"
    recipe = Recipe.from_dict({**payload, "training": {**payload["training"], "weight_decay": 0.03}})
    stages.task_spec(task).train_dense(recipe, tmp_path / "dense")
    assert seen == [0.03]


def test_the_prune_command_is_a_recipe_with_audits_off():
    config = PruneClassifierConfig(weight_decay=0.05, prune_epochs=1.5, learning_rate=3e-4, seed=7, distill=False,
                                   distill_alpha=0.7, hidden_distill_weight=0.2, max_length=48, head_sparsity=0.25)
    recipe = config.recipe()
    t = recipe.training
    assert (t.weight_decay, t.prune_epochs, t.learning_rate, t.seed, t.prune_learning_rate) == (
        0.05, 1.5, 3e-4, 7, None)
    assert (recipe.distillation.enabled, recipe.distillation.alpha, recipe.distillation.hidden_weight) == (
        False, 0.7, 0.2)
    assert dataclasses.asdict(recipe.pruning) == dataclasses.asdict(config.pruning_config())
    assert (recipe.data.max_length, recipe.data.eval_samples, recipe.data.eval_split) == (48, None, None)
    audits = recipe.audits
    assert not audits.robustness.enabled and not audits.privacy.enabled and audits.latency_rounds == 0
