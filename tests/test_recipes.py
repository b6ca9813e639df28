"""Recipes: bad recipes fail with the dotted key (or the file) and what is allowed, leaving no output behind; good
recipes (the shipped ones included) load and round-trip."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from hfprune.cli import run as run_command
from hfprune.cli import sweep as sweep_command
from hfprune.errors import ConfigError, DataError, HfpruneError
from hfprune.pipeline.runner import RecipeRunner, single_level
from hfprune.pipeline.sweep import parse_sparsities, sweep_levels
from hfprune.pruning.config import PruningConfig
from hfprune.recipes.loading import load_recipe, read_recipe_file
from hfprune.recipes.schema import Recipe

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
GOOD = {"name": "t", "model": {"name": "minilm"}, "data": {"dataset": "glue/sst2"}}


def _parser() -> argparse.ArgumentParser:
    """The ``hfprune`` parser with the recipe commands (as hfprune.cli.main registers them)."""
    parser = argparse.ArgumentParser(prog="hfprune")
    subparsers = parser.add_subparsers(dest="command")
    run_command.add_parser(subparsers)
    sweep_command.add_parser(subparsers)
    return parser


def _write(tmp_path: Path, payload: dict | str | bytes) -> Path:
    path = tmp_path / "recipe.yaml"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        path.write_text(payload if isinstance(payload, str) else yaml.safe_dump(payload), encoding="utf-8")
    return path


def _with(**sections) -> dict:
    payload = {key: dict(value) if isinstance(value, dict) else value for key, value in GOOD.items()}
    for key, value in sections.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


# (id, recipe (dict, YAML text or bytes; "{tmp}" is replaced by the test's folder), error class, exact message
# after "<file>: ")
BAD_RECIPES = [
    ("unknown-key", _with(pruning={"head_sparsty": 0.5}), ConfigError,
     # the pruning section's keys are PruningConfig's fields, sorted
     "pruning.head_sparsty: unknown key (did you mean 'head_sparsity'?); allowed keys in pruning: "
     f"{sorted(f.name for f in dataclasses.fields(PruningConfig))}"),
    ("unknown-section", _with(auditz={}), ConfigError,
     "auditz: unknown key (did you mean 'audits'?); allowed keys in a recipe: ['audits', 'data', 'description', "
     "'distillation', 'model', 'name', 'output', 'pruning', 'sweep', 'training']"),
    ("unknown-nested-key", _with(audits={"robustness": {"n_example": 5}}), ConfigError,
     "audits.robustness.n_example: unknown key (did you mean 'n_examples'?); allowed keys in audits.robustness: "
     "['attacks', 'enabled', 'n_examples', 'n_examples_per_attack', 'n_loyalty_examples', 'n_resamples', "
     "'query_budget', 'seed']"),
    ("wrong-type-int", _with(training={"batch_size": "32"}), ConfigError,
     "training.batch_size: expected an integer, got str '32'"),
    ("wrong-type-bool-as-number", _with(training={"learning_rate": True}), ConfigError,
     "training.learning_rate: expected a number, got bool True"),
    ("wrong-type-list", _with(audits={"robustness": {"attacks": "deepwordbug"}}), ConfigError,
     "audits.robustness.attacks: expected a list of strings, got str 'deepwordbug'"),
    ("old-attack-key", _with(audits={"robustness": {"recipes": ["pwws"]}}), ConfigError,
     "audits.robustness.recipes: renamed to audits.robustness.attacks; expected 'attacks:' in audits.robustness"),
    ("old-per-attack-key", _with(audits={"robustness": {"n_examples_per_recipe": {"pwws": 2}}}), ConfigError,
     "audits.robustness.n_examples_per_recipe: renamed to audits.robustness.n_examples_per_attack; expected "
     "'n_examples_per_attack:' in audits.robustness"),
    ("wrong-type-section", _with(model="minilm"), ConfigError,
     "model: expected a mapping of keys to values, got str 'minilm'"),
    ("sparsity-1.5", _with(pruning={"head_sparsity": 1.5}), ConfigError,
     "pruning.head_sparsity: expected a number in [0, 1), got 1.5"),
    ("ffn-sparsity-negative", _with(pruning={"ffn_sparsity": -0.1}), ConfigError,
     "pruning.ffn_sparsity: expected a number in [0, 1), got -0.1"),
    ("sweep-level-1.0", _with(sweep={"sparsities": [0.5, 1.0]}), ConfigError,
     "sweep.sparsities[1]: expected a number in [0, 1), got 1.0"),
    ("out-of-range", _with(audits={"robustness": {"n_examples": 0}}), ConfigError,
     "audits.robustness.n_examples: expected an integer >= 1, got 0"),
    ("unknown-attack-recipe", _with(audits={"robustness": {"attacks": ["textfoolr"]}}), ConfigError,
     "audits.robustness.attacks[0]: expected one of ['bae', 'checklist', 'deepwordbug', 'pruthi', 'pwws', "
     "'textfooler'], got 'textfoolr'"),
    ("mia-without-shadows", _with(audits={"privacy": {"attacks": ["lira"]}}), ConfigError,
     "audits.privacy.attacks[0]: attack 'lira' needs audits.privacy.n_shadows >= 2, got 0"),
    ("unknown-mia", _with(audits={"privacy": {"attacks": ["lisa"]}}), ConfigError,
     "audits.privacy.attacks[0]: expected one of ['loss', 'confidence', 'entropy', 'reference', 'lira'], got 'lisa'"),
    ("lm-with-textattack", _with(model={"name": None, "task": "causal-lm"}, data={"dataset": "jane_austen"}),
     ConfigError, "audits.robustness.enabled: the TextAttack audit attacks classifiers; expected false for task "
     "'causal-lm'"),
    ("missing-model", _with(model=None), ConfigError,
     "model: required section missing; expected a mapping with name (a Hub name or a model directory) and task"),
    ("missing-model-name", _with(model={"name": None}), ConfigError,
     "model.name: required for task 'sequence-classification' (a Hub name or a model directory); only causal-lm may "
     "build a model from scratch"),
    ("missing-model-path", _with(model={"name": "{tmp}/no-such-model"}), ConfigError,
     "model.name: '{tmp}/no-such-model' is not a directory ({tmp}/no-such-model); expected a saved model directory "
     "or a Hub name"),
    ("model-dir-without-config", _with(model={"name": "{tmp}/empty-model"}), ConfigError,
     "model.name: '{tmp}/empty-model' is not a saved model directory (no config.json in {tmp}/empty-model)"),
    ("unreadable-data-path", _with(data={"dataset": "glue/sst2", "data_dir": "{tmp}/no-such-data"}), DataError,
     "data.data_dir: '{tmp}/no-such-data' is not a directory ({tmp}/no-such-data); expected the folder holding "
     "hfprune's local dataset copies"),
    ("data-path-is-a-file", _with(data={"dataset": "glue/sst2", "data_dir": "{tmp}/file.txt"}), DataError,
     "data.data_dir: '{tmp}/file.txt' is not a directory ({tmp}/file.txt); expected the folder holding hfprune's "
     "local dataset copies"),
    ("not-a-mapping", "- model\n- data\n", ConfigError,
     "recipe file {file}: expected a mapping of sections (model, data, pruning, ...), got list"),
    ("invalid-yaml", "model: {name: minilm\ndata: [\n", ConfigError,
     "recipe file {file}: not valid YAML at line 2, column 5 (expected ',' or '}', but got ':')"),
    ("non-utf8", b"name: caf\xe9\nmodel: {name: minilm}\n", ConfigError,
     "recipe file {file}: not valid UTF-8 (byte 0xe9 at offset 9); save it as UTF-8"),
]


def _fill(value, tmp_path: Path, file: Path):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp_path)).replace("{file}", str(file))
    if isinstance(value, dict):
        return {k: _fill(v, tmp_path, file) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("payload", "error", "message"), [case[1:] for case in BAD_RECIPES],
                         ids=[case[0] for case in BAD_RECIPES])
def test_bad_recipe_fails_naming_the_key_and_writes_nothing(tmp_path, payload, error, message):
    (tmp_path / "empty-model").mkdir()
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "out"
    file = tmp_path / "recipe.yaml"
    payload = _fill(payload, tmp_path, file)
    if isinstance(payload, dict):
        payload.setdefault("output", {"dir": str(out)})
    recipe_file = _write(tmp_path, payload)
    before = sorted(p.name for p in tmp_path.iterdir())

    args = _parser().parse_args(["run", str(recipe_file)])
    with pytest.raises(error) as caught:
        args.handler(args)

    expected = _fill(message, tmp_path, file)
    text = str(caught.value)
    assert text == expected if text.startswith("recipe file") else text == f"{recipe_file}: {expected}"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written anywhere


def test_missing_recipe_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^recipe file .*nope\.yaml: no such file$"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_recipe_file_is_named(tmp_path):
    path = _write(tmp_path, GOOD)
    path.chmod(0)
    try:
        with pytest.raises(ConfigError, match=r"^recipe file .*recipe\.yaml: cannot read it \(Permission denied\)$"):
            load_recipe(path)
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_data_dir_is_named(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0)
    try:
        with pytest.raises(DataError, match=r"data\.data_dir: cannot read .* \(permission denied\)$"):
            load_recipe(_write(tmp_path, _with(data={"data_dir": str(folder)})))
    finally:
        folder.chmod(0o755)


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-4 as a string; recipes read it as the number users mean."""
    recipe = load_recipe(_write(tmp_path, "model: {name: minilm}\ntraining: {learning_rate: 1e-4}\n"))
    assert recipe.training.learning_rate == pytest.approx(1e-4)


def test_command_line_overrides_are_validated_like_recipe_keys(tmp_path):
    path = _write(tmp_path, GOOD)
    args = _parser().parse_args(["run", str(path), "--threads", "0", "--output-dir", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match=r"training\.threads: expected an integer >= 1, got 0$"):
        args.handler(args)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("0,0.5,1.5", "--sparsities[2]: expected a number in [0, 1), got 1.5"),
    ("0,abc", "--sparsities[1]: expected a number in [0, 1), got 'abc'"),
    ("0.5,0.5", "--sparsities: expected distinct levels, got [0.5, 0.5]"),
])
def test_bad_sweep_levels(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_sparsities(text)
    assert str(caught.value) == message


def test_sweep_levels_set_the_chosen_pruning_fields():
    recipe = Recipe.from_dict({**GOOD, "pruning": {"head_sparsity": 0.1, "ffn_sparsity": 0.2, "scoring": "magnitude"}})
    levels = sweep_levels(recipe, [0.7, 0.0], ["ffn_sparsity"])
    assert [level.name for level in levels] == ["levels/sparsity-0.00", "levels/sparsity-0.70"]
    assert [(lv.pruning.head_sparsity, lv.pruning.ffn_sparsity) for lv in levels] == [(0.1, 0.0), (0.1, 0.7)]
    assert all(level.pruning.scoring == "magnitude" for level in levels)


@pytest.mark.parametrize("path", sorted(RECIPES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load_round_trip_and_state_their_runtime(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    assert "# expected runtime:" in text
    recipe = Recipe.from_dict(read_recipe_file(path))
    again = Recipe.from_dict(yaml.safe_load(yaml.safe_dump(recipe.to_dict())))
    assert again == recipe
    assert again.to_dict() == recipe.to_dict() and again.fingerprint() == recipe.fingerprint()


def test_good_recipe_round_trips_through_a_file(tmp_path):
    payload = _with(pruning={"head_sparsity": 0.25, "ffn_sparsity": 0.75}, training={"dense_epochs": 2})
    recipe = load_recipe(_write(tmp_path, payload))
    assert (recipe.pruning.head_sparsity, recipe.pruning.ffn_sparsity) == (0.25, 0.75)
    assert recipe.training.dense_epochs == 2.0 and isinstance(recipe.training.dense_epochs, float)
    assert recipe.audits.robustness.attacks == ["deepwordbug", "pwws"]  # defaults filled in
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(recipe.to_dict()), encoding="utf-8")
    assert load_recipe(dumped) == recipe


def test_preflight_checks_data_size_before_writing(tmp_path):
    recipe = load_recipe(_write(tmp_path, _with(data={"dataset": "glue/sst2", "train_samples": 70000},
                                                output={"dir": str(tmp_path / "out")})))
    with pytest.raises(ConfigError, match=r"^data\.train_samples: expected train_samples \+ "
                       r"audits\.privacy\.n_nonmembers <= 67349 \(rows of glue/sst2 train\), got 70000 \+ 1000$"):
        RecipeRunner(recipe).preflight(single_level(recipe))
    assert not (tmp_path / "out").exists()


def test_preflight_names_a_hub_model_that_cannot_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = load_recipe(_write(tmp_path, _with(model={"name": "no-such-org/no-such-model"},
                                                output={"dir": str(tmp_path / "out")})))
    with pytest.raises(ConfigError, match=r"^model\.name: cannot load 'no-such-org/no-such-model' here \(.*\); "
                       r"without Hub access only model directories and the embedded minilm load$"):
        RecipeRunner(recipe).preflight(single_level(recipe))
    assert not (tmp_path / "out").exists()


def test_check_flag_validates_the_demo_recipe_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    args = _parser().parse_args(["run", str(RECIPES_DIR / "minilm-sst2-offline.yaml"), "--check",
                                 "--output-dir", str(out)])
    assert args.handler(args) == 0
    assert "OK" in capsys.readouterr().out
    assert not out.exists()


def test_output_dir_holding_something_else_is_refused(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    recipe = load_recipe(_write(tmp_path, _with(output={"dir": str(out)})))
    with pytest.raises(HfpruneError, match=r"output\.dir: .*busy is not empty and holds no hfprune run"):
        RecipeRunner(recipe).preflight(single_level(recipe))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
