"""Bad input, table-driven and fuzzed: recipes, config dataclasses, data files and model folders.

Every bad input is an HfpruneError (ConfigError, DataError, UnsupportedModelError...) whose one-line message names
the field or file and what was expected; through the CLI it is one line on stderr, exit code 2, no traceback, and
the output folder is never created. Texts longer than the model accepts are truncated, not a crash.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfprune.cli.main import main
from hfprune.errors import ConfigError, DataError, HfpruneError, UnsupportedModelError
from hfprune.recipes.loading import load_recipe
from hfprune.recipes.schema import Recipe
from hfprune.utils.config import matches_type

torch.set_num_threads(1)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny model folders: a good 2-label BERT classifier, a 3-label one, one without a tokenizer, a T5 and a
    config of a model type transformers does not know."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hfprune.models import resolve_model

    root = tmp_path_factory.mktemp("models")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    folders = {}
    for name, labels, with_tokenizer in (("good", 2, True), ("three-labels", 3, True), ("no-tokenizer", 2, False)):
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=64, num_labels=labels))
        model.save_pretrained(root / name)
        if with_tokenizer:
            tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    for name, config in (("t5", {"model_type": "t5", "d_model": 32, "num_layers": 1}),
                         ("unknown-type", {"model_type": "frobnicator", "hidden_size": 32})):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


def _recipe(model_dir: Path, out: Path, **sections) -> dict:
    payload = {
        "name": "bad-input",
        "model": {"name": str(model_dir)},
        "data": {"dataset": "glue/sst2", "train_samples": 16, "eval_samples": 16, "max_length": 16},
        "training": {"dense_epochs": 1, "prune_epochs": 1, "batch_size": 8, "threads": 1},
        "audits": {"robustness": {"enabled": False}, "privacy": {"n_nonmembers": 16, "n_resamples": 0},
                   "latency_rounds": 0},
        "output": {"dir": str(out)},
    }
    for key, value in sections.items():
        payload[key] = {**payload.get(key, {}), **value} if isinstance(value, dict) else value
    return payload


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _assert_one_line_error(code: int, err: str, command: str, *fragments: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]  # log lines (INFO) may come before; the error is the last, single line
    assert line.startswith(f"hfprune {command}: error: "), err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# --------------------------------------------------------------------------------------------- the CLI, tabled
def _sst2_files(folder: Path, train: bytes, dev: bytes) -> Path:
    (folder / "sst2").mkdir(parents=True)
    (folder / "sst2" / "train.tsv").write_bytes(train)
    (folder / "sst2" / "dev.tsv").write_bytes(dev)
    return folder


HEADER = b"sentence\tlabel\n"
ROWS = [b"a fine film number %d\t%d\n" % (i, i % 2) for i in range(40)]
GOOD_ROWS = b"".join(ROWS)

# (id, recipe sections or raw YAML, data folder builder or None, fragments the one-line error must hold)
CLI_CASES = [
    ("unknown-key", {"pruning": {"head_sparsity": 0.5, "heads_sparsity": 0.5}}, None,
     ["pruning.heads_sparsity: unknown key (did you mean 'head_sparsity'?)"]),
    ("wrong-type", {"training": {"batch_size": "eight"}}, None,
     ["training.batch_size: expected an integer, got str 'eight'"]),
    ("nan-sparsity", "pruning: {head_sparsity: .nan}", None, ["pruning.head_sparsity: expected a number in [0, 1)"]),
    ("inf-sparsity", "pruning: {ffn_sparsity: .inf}", None, ["pruning.ffn_sparsity: expected a number in [0, 1)"]),
    ("sparsity-one", {"pruning": {"head_sparsity": 1.0}}, None,
     ["pruning.head_sparsity: expected a number in [0, 1), got 1.0"]),
    ("negative-sparsity", {"pruning": {"weight_sparsity": -0.5}}, None,
     ["pruning.weight_sparsity: expected a number in [0, 1), got -0.5"]),
    ("nan-sweep-level", "sweep: {sparsities: [0.5, .nan]}", None, ["sweep.sparsities[1]: expected a number in [0, 1)"]),
    ("nan-learning-rate", "training: {learning_rate: .nan}", None,
     ["training.learning_rate: expected a finite number > 0.0, got nan"]),
    ("mapping-with-int-keys", {"audits": {"robustness": {"enabled": False, "n_examples_per_attack": {1: 3}}}}, None,
     ["audits.robustness.n_examples_per_attack: expected a mapping of strings to integers"]),
    ("label-count-mismatch", {"model": {"name": "{three-labels}"}}, None,
     ["model.name: ", "three-labels is a classifier with 3 labels but the dataset has 2 (negative, positive)"]),
    ("unsupported-t5", {"model": {"name": "{t5}"}}, None,
     ["model.name: ", "has model_type 't5', which hfprune cannot prune; expected one of ['bert', 'distilbert', "
      "'gpt2', 'llama', 'mistral', 'qwen2', 'qwen3', 'roberta']"]),
    ("unknown-model-type", {"model": {"name": "{unknown-type}"}}, None, ["model_type 'frobnicator'"]),
    ("missing-tokenizer", {"model": {"name": "{no-tokenizer}"}}, None,
     ["model.name: ", "no-tokenizer has no tokenizer (expected one of ['tokenizer.json'"]),
    ("max-length-beyond-model", {"data": {"max_length": 512}}, None,
     ["data.max_length: expected at most 64 (the longest input", "got 512"]),
    ("teacher-without-split", {"model": {"teacher": "{good}"}}, None,
     ["model.teacher: ", "has no membership_split.json"]),
    ("missing-data-files", {}, lambda folder: folder, ["data.dataset: ", "sst2/train.tsv"]),
    ("empty-data-file", {}, lambda folder: _sst2_files(folder, HEADER, HEADER),
     ["data.dataset: ", "sst2/train.tsv: no examples in this glue/sst2 split"]),
    ("non-utf8-data-file", {}, lambda folder: _sst2_files(folder, HEADER + b"caf\xe9 au lait\t1\n" + GOOD_ROWS,
                                                          HEADER + GOOD_ROWS),
     ["data.dataset: ", "sst2/train.tsv:2: not valid UTF-8 (byte 0xe9 at offset 18)"]),
    ("malformed-data-row", {}, lambda folder: _sst2_files(folder, HEADER + b"no label column\n", HEADER + GOOD_ROWS),
     ["data.dataset: ", "sst2/train.tsv:2: expected 2 tab-separated fields, got 1"]),
    ("too-few-rows", {}, lambda folder: _sst2_files(folder, HEADER + b"".join(ROWS[:8]), HEADER + GOOD_ROWS),
     ["data.train_samples: expected train_samples + audits.privacy.n_nonmembers <= "]),
]


def _fill_models(value, models: dict[str, Path]):
    if isinstance(value, str):
        return re.sub(r"\{([\w-]+)\}", lambda m: str(models[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _fill_models(v, models) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("sections", "data", "fragments"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_input_through_the_cli_is_one_line_and_writes_nothing(sections, data, fragments, models, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    if data is not None:
        monkeypatch.setenv("HFPRUNE_DATA_DIR", str(data(tmp_path / "data")))
    out = tmp_path / "out"
    recipe_file = tmp_path / "recipe.yaml"
    if isinstance(sections, str):  # raw YAML merged over the good recipe (for .nan and .inf)
        sections = yaml.safe_load(sections)
    recipe_file.write_text(yaml.safe_dump(_recipe(models["good"], out, **_fill_models(sections, models))))
    before = sorted(p.name for p in tmp_path.iterdir())

    code, err = _cli(capsys, "run", str(recipe_file))

    _assert_one_line_error(code, err, "run", *fragments)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [n for n in before if n != "cache"]


def test_good_recipe_passes_the_same_checks(models, tmp_path, capsys):
    """The control case: the recipe the table breaks passes --check, so each failure above is the broken field."""
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(_recipe(models["good"], tmp_path / "out")))
    assert main(["run", str(recipe_file), "--check"]) == 0
    assert not (tmp_path / "out").exists()


def test_non_utf8_recipe_through_the_cli(tmp_path, capsys):
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_bytes(b"name: r\xe9sum\xe9\nmodel: {name: minilm}\n")
    code, err = _cli(capsys, "run", str(recipe_file), "--output-dir", str(tmp_path / "out"))
    _assert_one_line_error(code, err, "run", f"recipe file {recipe_file}: not valid UTF-8 (byte 0xe9 at offset 7)")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "fragments"), [
    (["sweep", "{recipe}", "--sparsities", "0.5,nan"], ["--sparsities[1]: expected a number in [0, 1), got nan"]),
    (["sweep", "{recipe}", "--sparsities", "0.2,inf"], ["--sparsities[1]: expected a number in [0, 1), got inf"]),
    (["prune", "--head-sparsity", "nan", "--output-dir", "{out}"],
     ["PruningConfig.head_sparsity: expected a number in [0, 1), got nan"]),
    (["prune", "--teacher", "{t5}", "--output-dir", "{out}"], ["teacher: ", "has model_type 't5'"]),
    (["prune", "--model", "{three-labels}", "--output-dir", "{out}"], ["model: ", "classifier with 3 labels"]),
    (["prune", "--teacher", "{good}", "--max-length", "4096", "--output-dir", "{out}"],
     ["max_length: expected at most 64", "got 4096"]),
    (["finetune", "--model", "{no-tokenizer}", "--output-dir", "{out}"], ["model: ", "has no tokenizer"]),
    (["finetune", "--learning-rate", "inf", "--output-dir", "{out}"],
     ["FinetuneConfig.learning_rate: expected a finite number > 0, got inf"]),
])
def test_bad_flags_of_the_other_commands(argv, fragments, models, tmp_path, capsys):
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(_recipe(models["good"], tmp_path / "out")))
    names = {"recipe": str(recipe_file), "out": str(tmp_path / "out"), **{k: str(v) for k, v in models.items()}}
    argv = [re.sub(r"\{([\w-]+)\}", lambda m: names[m.group(1)], arg) for arg in argv]
    code, err = _cli(capsys, *argv)
    _assert_one_line_error(code, err, argv[0], *fragments)
    assert not (tmp_path / "out").exists()


def test_an_unforeseen_exception_is_one_line_without_traceback(monkeypatch, capsys):
    """A bug or an input no check foresaw: one line and exit code 1; --verbose shows the traceback."""
    from hfprune.cli import env

    def broken(args):
        raise TypeError("unsupported operand\nsecond line")

    monkeypatch.setattr(env, "run", broken)
    code, err = _cli(capsys, "env")
    assert code == 1 and "Traceback" not in err
    assert err == ("hfprune env: unexpected error: TypeError: unsupported operand second line (rerun with --verbose "
                   "for the traceback)\n")
    with pytest.raises(TypeError):
        main(["-v", "env"])


# ------------------------------------------------------------------------------------- long texts are truncated
LONG_TEXT = " ".join(["wonderful"] * 3000)  # ~3,000 tokens; the tiny model accepts 64 positions


def test_texts_beyond_the_models_length_are_truncated_not_a_crash(models):
    from transformers import AutoTokenizer

    from hfprune.audit.privacy.scores import causal_lm_token_scores, classifier_stats
    from hfprune.audit.robustness.wrapper import ClassifierPredictor
    from hfprune.training import tokenize_for_classification

    tokenizer = AutoTokenizer.from_pretrained(models["good"])
    classifier = tiny_model("bert", vocab_size=tokenizer.vocab_size)  # 64 positions
    texts, labels = [LONG_TEXT, "short"], [1, 0]

    # asked for more than the model accepts: capped at its 64 positions
    probabilities = ClassifierPredictor(classifier, tokenizer, max_length=512).predict_proba(texts)
    assert probabilities.shape == (2, 2) and abs(probabilities.sum(axis=1) - 1).max() < 1e-9
    stats = classifier_stats(classifier, tokenizer, texts, labels, max_length=None)
    assert len(stats) == 2 and all(math.isfinite(x) for x in stats.loss)
    truncated = classifier_stats(classifier, tokenizer, [" ".join(["wonderful"] * 62)], [1], max_length=None)
    assert stats.loss[0] == pytest.approx(truncated.loss[0], abs=1e-6)  # the same 64 tokens were scored

    import datasets

    rows = datasets.Dataset.from_dict({"sentence": texts, "label": labels})
    encoded = tokenize_for_classification(rows, tokenizer, max_length=16)
    assert [len(ids) for ids in encoded["input_ids"]] == [16, 3]

    lm = tiny_model("gpt2", task="causal_lm", vocab_size=tokenizer.vocab_size)  # 64 positions
    scores = causal_lm_token_scores(lm, tokenizer, texts, max_length=None)
    assert scores.n_tokens.tolist() == [63.0, 2.0]  # 64 positions: 63 predicted tokens


# -------------------------------------------------------------------------------------------- fuzzing recipes
GOOD_RECIPE = {"name": "fuzz", "model": {"name": "minilm"}, "data": {"dataset": "glue/sst2"}}


def _recipe_keys() -> list[str]:
    """Every dotted key of the recipe schema (sections and leaves)."""
    keys = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            dotted = f"{prefix}{field.name}"
            keys.append(dotted)
            hint = hints[field.name]
            if dataclasses.is_dataclass(hint):
                walk(hint, dotted + ".")

    walk(Recipe, "")
    return keys


RECIPE_KEYS = _recipe_keys()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from([0, 1, -1, 0.5, 1.0, 0.999, 1e-9, "0.5", "", " ", "..", "../../etc", "/tmp/x", "minilm",
                     float("nan"), float("inf"), -0.0]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
), max_leaves=8)
# an error names a (dotted) key of the recipe first, then what was expected
ERROR_START = re.compile(rf"^(?:{'|'.join(f.name for f in dataclasses.fields(Recipe))})\b")


def _set(payload: dict, dotted: str, value) -> dict:
    payload = json.loads(json.dumps(payload))
    node = payload
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
    node[last] = value
    return payload


def _assert_good_error(exc: BaseException) -> str:
    assert isinstance(exc, (ConfigError, DataError, UnsupportedModelError)), repr(exc)
    message = str(exc)
    assert message and "\n" not in message, message
    return message


@FUZZ
@given(key=st.one_of(st.sampled_from(RECIPE_KEYS), st.text(min_size=1, max_size=12).map(lambda k: f"pruning.{k}")),
       value=values)
def test_fuzzed_recipe_values_fail_only_with_a_named_config_error(key, value):
    payload = _set(GOOD_RECIPE, key, value)
    try:
        recipe = Recipe.from_dict(payload)
    except HfpruneError as exc:
        message = _assert_good_error(exc)
        assert ERROR_START.match(message), message
        return
    assert isinstance(recipe, Recipe)
    for name in ("head_sparsity", "ffn_sparsity", "weight_sparsity"):  # whatever got through is in range
        assert 0 <= getattr(recipe.pruning, name) < 1
    assert all(0 <= level < 1 for level in recipe.sweep.sparsities)


@FUZZ
@given(text=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")),
                      st.builds(lambda v: yaml.safe_dump(v).encode(), values)))
def test_fuzzed_recipe_files_fail_only_with_a_config_error_naming_the_file(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "recipe.yaml"
    path.write_bytes(text)
    try:
        load_recipe(path)
    except HfpruneError as exc:
        message = _assert_good_error(exc)
        assert message.startswith((f"recipe file {path}: ", f"{path}: ")), message


# -------------------------------------------------------------------------------------- fuzzing config classes
def _config_classes() -> list[type]:
    from hfprune.audit.privacy.audit import PrivacyAuditConfig
    from hfprune.audit.privacy.classifier import MemberFinetuneConfig
    from hfprune.audit.privacy.lm import CanaryLMConfig
    from hfprune.audit.robustness.config import AuditConfig
    from hfprune.pipeline.prune_classifier import PruneClassifierConfig
    from hfprune.pruning.config import PruningConfig
    from hfprune.training import FinetuneConfig

    return [PruningConfig, FinetuneConfig, PruneClassifierConfig, MemberFinetuneConfig, CanaryLMConfig, AuditConfig,
            PrivacyAuditConfig]


CONFIG_FIELDS = [(cls, f.name) for cls in _config_classes() for f in dataclasses.fields(cls)]


def test_every_config_class_is_fuzzed():
    """Standalone configs field by field here; recipe sections (ConfigMixins too) through every dotted recipe key."""
    from hfprune.recipes.section import Section
    from hfprune.utils.config import ConfigMixin

    assert set(ConfigMixin.__subclasses__()) == set(_config_classes()) | {Section}
    section_keys = {cls.key(f.name) for cls in Section.__subclasses__() for f in dataclasses.fields(cls)}
    assert section_keys and section_keys <= set(RECIPE_KEYS)


@FUZZ
@given(case=st.sampled_from(CONFIG_FIELDS), value=values)
def test_fuzzed_config_fields_fail_only_with_an_error_naming_the_field(case, value):
    cls, name = case
    hint = typing.get_type_hints(cls)[name]
    try:
        config = cls.from_dict({name: value})
    except HfpruneError as exc:
        message = _assert_good_error(exc)
        assert f"{cls.__name__}.{name}" in message or message.startswith(f"{name}:"), message
        return
    assert matches_type(value, hint), f"{cls.__name__}.{name} accepted {value!r} for {hint}"
    numbers = value if isinstance(value, list) else [value]
    assert all(not isinstance(v, float) or math.isfinite(v) for v in numbers), f"{cls.__name__}.{name}={value!r}"
    assert isinstance(config, cls)


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda cls: cls.__name__)
def test_config_files_with_unknown_keys_or_bad_json_name_the_problem(cls, tmp_path):
    path = tmp_path / cls.config_file_name
    path.write_text(json.dumps({"no_such_field": 1}))
    allowed = sorted(f.name for f in dataclasses.fields(cls))
    # the one unknown-key format of configs and recipes (recipes name ``pruning.x`` instead of ``PruningConfig.x``)
    with pytest.raises(ConfigError, match=rf"^{cls.__name__}\.no_such_field: unknown key; allowed keys in "
                                          rf"{cls.__name__}: {re.escape(str(allowed))}$"):
        cls.from_pretrained(tmp_path)
    path.write_bytes(b'{"seed": 1, "x": "\xff"}')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: not valid UTF-8 JSON"):
        cls.from_pretrained(tmp_path)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["distill_alpha", "distill_temperature", "hidden_distill_weight", "hidden_layer_map",
                             "cache_teacher_logits", "teacher_cache_key"]), value=values)
def test_fuzzed_distillation_arguments_fail_only_with_a_named_config_error(name, value, tmp_path_factory):
    from hfprune.distill import DistillationArguments

    try:
        DistillationArguments(output_dir=str(tmp_path_factory.getbasetemp() / "distill"), use_cpu=True,
                              report_to="none", **{name: value})
    except HfpruneError as exc:
        assert f"DistillationArguments.{name}" in _assert_good_error(exc)
        return
    if name in ("distill_alpha", "distill_temperature", "hidden_distill_weight"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
