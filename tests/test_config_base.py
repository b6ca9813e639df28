"""One config base (issue 15): recipe sections are ConfigMixins that know their dotted key, loaded by the one
``ConfigMixin.from_dict`` (one type check, one int-to-float coercion, one unknown-key error), and the training knobs
(batch size, seed, threads, device, precision) are declared and validated once for every config that trains."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hfprune.audit.privacy.classifier import MemberFinetuneConfig
from hfprune.audit.privacy.lm import CanaryLMConfig
from hfprune.audit.privacy.split import MembershipSplit
from hfprune.errors import ConfigError
from hfprune.pipeline.prune_classifier import PruneClassifierConfig
from hfprune.pipeline.sweep import sweep_levels
from hfprune.pruning.config import PruningConfig
from hfprune.recipes.audit_sections import RobustnessSection
from hfprune.recipes.schema import PruningSection, Recipe, TrainingSection
from hfprune.recipes.section import Section
from hfprune.training import FinetuneConfig
from hfprune.utils.config import ConfigMixin

GOOD = {"name": "base", "model": {"name": "minilm"}}


def _message(build) -> str:
    with pytest.raises(ConfigError) as caught:
        build()
    return str(caught.value)


def test_recipe_sections_are_config_mixins_named_by_their_dotted_key():
    assert issubclass(Section, ConfigMixin) and issubclass(PruningSection, PruningConfig)
    assert RobustnessSection.key("attacks") == "audits.robustness.attacks"
    assert Recipe.key("name") == "name" and PruningConfig.key("seed") == "PruningConfig.seed"
    # the same PruningConfig check, named by where the value was written
    assert _message(lambda: PruningConfig.from_dict({"head_sparsity": 1.5})) == (
        "PruningConfig.head_sparsity: expected a number in [0, 1), got 1.5")
    assert _message(lambda: Recipe.from_dict({**GOOD, "pruning": {"head_sparsity": 1.5}})) == (
        "pruning.head_sparsity: expected a number in [0, 1), got 1.5")
    assert _message(lambda: Recipe.from_dict({**GOOD, "audits": {"robustness": {"attacks": "pwws"}}})) == (
        "audits.robustness.attacks: expected a list of strings, got str 'pwws'")


def test_one_unknown_key_format_for_configs_recipe_sections_and_result_files():
    split_fields = sorted(f.name for f in dataclasses.fields(MembershipSplit))
    pruning_fields = sorted(f.name for f in dataclasses.fields(PruningConfig))
    assert _message(lambda: PruningConfig.from_dict({"head_sparsty": 0.5})) == (
        f"PruningConfig.head_sparsty: unknown key (did you mean 'head_sparsity'?); allowed keys in PruningConfig: "
        f"{pruning_fields}")
    assert _message(lambda: Recipe.from_dict({**GOOD, "pruning": {"head_sparsty": 0.5}})) == (
        f"pruning.head_sparsty: unknown key (did you mean 'head_sparsity'?); allowed keys in pruning: "
        f"{pruning_fields}")
    assert _message(lambda: MembershipSplit.from_dict({"zzz": 1})) == (
        f"MembershipSplit.zzz: unknown key; allowed keys in MembershipSplit: {split_fields}")


def test_from_dict_coerces_integers_to_floats_and_round_trips_a_recipe():
    recipe = Recipe.from_dict({**GOOD, "training": {"learning_rate": 1}, "pruning": {"head_sparsity": 0},
                               "audits": None})
    assert type(recipe.training.learning_rate) is float and recipe.training.learning_rate == 1.0
    assert type(recipe.pruning.head_sparsity) is float and recipe.pruning.head_sparsity == 0.0
    assert type(recipe.pruning) is PruningSection
    assert recipe.audits == Recipe.from_dict(GOOD).audits  # an empty section takes its defaults
    again = Recipe.from_dict(recipe.to_dict())
    assert again == recipe and again.fingerprint() == recipe.fingerprint()
    config = PruningConfig.from_dict({"ffn_sparsity": 0, "hfprune_version": "0"})  # the stamp save_pretrained writes
    assert type(config.ffn_sparsity) is float and config == PruningConfig()


def test_sweep_levels_name_the_recipe_key_of_a_bad_pruning_value():
    recipe = Recipe.from_dict({**GOOD, "pruning": {"head_sparsity": 0.0, "ffn_sparsity": 0.0, "weight_method": "2:4",
                                                   "weight_sparsity": 0.5}})
    assert _message(lambda: sweep_levels(recipe, [0.3], ["weight_sparsity"])) == (
        "--sparsities (0.3): pruning.weight_sparsity: weight_method '2:4' fixes the weight sparsity, so expected 0.5, "
        "got 0.3")


# (config that trains, its owner in errors)
TRAINING_CONFIGS = [(FinetuneConfig, "FinetuneConfig"), (PruneClassifierConfig, "PruneClassifierConfig"),
                    (MemberFinetuneConfig, "MemberFinetuneConfig"), (CanaryLMConfig, "CanaryLMConfig"),
                    (TrainingSection, "training")]


@pytest.mark.parametrize(("cls", "owner"), TRAINING_CONFIGS, ids=lambda c: getattr(c, "__name__", c))
@pytest.mark.parametrize(("name", "value", "expected"), [
    ("batch_size", 0, "expected an integer >= 1, got 0"),
    ("seed", -1, "expected an integer >= 0, got -1"),
    ("threads", 0, "expected an integer >= 1, got 0"),
    ("precision", "int8", "expected one of ['bf16', 'fp16', 'fp32'], got 'int8'"),
])
def test_every_config_that_trains_checks_its_knobs_the_same_way(cls, owner, name, value, expected):
    assert _message(lambda: cls.from_dict({name: value})) == f"{owner}.{name}: {expected}"


def test_the_training_knobs_have_one_definition():
    def help_of(cls, name):
        return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]

    classes = [cls for cls, _ in TRAINING_CONFIGS]
    assert {help_of(cls, "batch_size") for cls in classes} == {"training batch size"}
    threads = {re.sub(r"\((None|null):", "(-:", help_of(cls, "threads")).split(". Gradients")[0] for cls in classes}
    assert threads == {"torch CPU threads (-: the cores other processes leave idle)"}
    assert all(help_of(cls, "seed").startswith("seed of ") for cls in classes)


@pytest.mark.parametrize("cls", [MemberFinetuneConfig, CanaryLMConfig], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ["epochs", "learning_rate"])
def test_infinite_epochs_or_learning_rate_are_refused_when_the_config_is_built(cls, name):
    """They used to pass the config and fail only when the Trainer's settings were built, mid-run."""
    expected = f"{cls.__name__}.{name}: expected a positive number, got inf"
    assert _message(lambda: cls(**{name: float("inf")})) == expected
