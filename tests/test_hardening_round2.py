"""Hardening, round two (issue 22, items 5-8): non-finite weights and losses, tampered structures and weight files,
local data folders checked before anything is written, a config object shared by two models, a full disk, and
per-layer minimums a model cannot meet.

Each bad input is one line naming the file or key and what was expected, exit code 2 through the CLI, and nothing
written (or, where it can only be known while writing, the previous state intact).
"""

from __future__ import annotations

import copy
import errno
import gzip
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_ARCHS, tiny_config, tiny_model
from safetensors.torch import load_file, save_file

import hfprune
from hfprune.cli.main import main
from hfprune.errors import ConfigError, DataError, DiskFullError, HfpruneError, NonFiniteError
from hfprune.pruning.nonfinite import NonFiniteGuard, _first_batch_outputs
from hfprune.pruning.structure import CONFIG_KEY

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------------ helpers
def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _one_line_error(code: int, err: str, command: str, *fragments: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    prefix = f"hfprune {command}: error: "
    lines = [line for line in err.splitlines() if prefix in line]
    assert len(lines) == 1, err
    # progress bars (which end lines with \r, not \n) may share its terminal line, or close after it
    line = lines[0][lines[0].index(prefix):]
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Tiny 2-label BERT folders with the MiniLM tokenizer: a good one, one with a NaN weight, one whose weights
    are only a pickled pytorch_model.bin."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hfprune.models import resolve_model

    root = tmp_path_factory.mktemp("round2-models")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    folders = {}
    for name in ("good", "nan-weight", "bin-only"):
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=64, num_labels=2))
        if name == "nan-weight":
            with torch.no_grad():
                model.bert.encoder.layer[0].output.dense.weight[3, 5] = float("nan")
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    weights = load_file(folders["bin-only"] / "model.safetensors")
    torch.save(weights, folders["bin-only"] / "pytorch_model.bin")
    (folders["bin-only"] / "model.safetensors").unlink()
    return folders


def _recipe(model_dir: Path, out: Path, dataset: str = "glue/sst2", **sections) -> dict:
    payload = {
        "name": "round2",
        "model": {"name": str(model_dir)},
        "data": {"dataset": dataset, "train_samples": 16, "eval_samples": 16, "max_length": 16},
        "training": {"dense_epochs": 1, "prune_epochs": 1, "batch_size": 8, "threads": 1},
        "audits": {"robustness": {"enabled": False}, "privacy": {"n_nonmembers": 16, "n_resamples": 0},
                   "latency_rounds": 0},
        "output": {"dir": str(out)},
    }
    for key, value in sections.items():
        payload[key] = {**payload.get(key, {}), **value}
    return payload


def _write_recipe(tmp_path: Path, payload: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(payload))
    return path


def _pruned_dir(tmp_path: Path, arch: str = "bert") -> tuple[Path, torch.nn.Module]:
    model = tiny_model(arch)
    hfprune.prune(model, hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    return hfprune.save_pruned(model, tmp_path / "pruned"), model


# ------------------------------------------------------------------------- 7. a config object shared by two models
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_models_sharing_one_config_object_prune_save_and_reload_their_own_structure(arch, tmp_path, tiny_inputs):
    """transformers 5 gives both models of ``from_config(cfg)`` the same config object; each pruned model records
    its own structure (on its own copy), the caller's cfg is untouched, and each reloads to identical logits."""
    from transformers import AutoModelForSequenceClassification

    cfg = tiny_config(arch)
    torch.manual_seed(0)
    a = AutoModelForSequenceClassification.from_config(cfg).eval()
    b = AutoModelForSequenceClassification.from_config(cfg).eval()
    assert a.config is b.config  # the premise: one shared object
    structure_a = hfprune.prune(a, hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    structure_b = hfprune.prune(b, hfprune.PruningConfig(head_sparsity=0.25, ffn_sparsity=0.75, scoring="random"))

    assert not hasattr(cfg, CONFIG_KEY)
    assert a.config is not b.config
    assert structure_a.kept_heads != structure_b.kept_heads
    for model, structure, name in ((a, structure_a, "a"), (b, structure_b, "b")):
        assert getattr(model.config, CONFIG_KEY) == structure.to_dict()
        assert all(m.config is model.config for m in model.modules() if hasattr(m, "config"))
        reloaded = hfprune.load_pruned(hfprune.save_pruned(model, tmp_path / name))
        assert getattr(reloaded.config, CONFIG_KEY) == structure.to_dict()
        with torch.no_grad():
            assert torch.equal(reloaded(**tiny_inputs).logits, model(**tiny_inputs).logits)


# ------------------------------------------------------------------- 6. tampered structures and weight files
def _tamper(payload: dict, key: str, value) -> None:
    payload[CONFIG_KEY][key] = value(payload[CONFIG_KEY][key]) if callable(value) else value


# (id, structure key, new value or function of the old one, fragments of the error)
STRUCTURE_CASES = [
    ("one-layer-too-many", "kept_heads", lambda kept: [*kept, kept[0]],
     ["kept_heads: expected one list per layer (2, num_hidden_layers of config.json), got 3"]),
    ("one-layer-missing", "kept_neurons", lambda kept: kept[:1],
     ["kept_neurons: expected one list per layer (2, num_hidden_layers of config.json), got 1"]),
    ("indices-as-strings", "kept_heads", lambda kept: [[str(i) for i in layer] for layer in kept],
     [f"{CONFIG_KEY}.kept_heads: expected a list (one per layer) of lists of integer indices, got list [['"]),
    ("count-as-string", "dense_num_heads", "4", [f"{CONFIG_KEY}.dense_num_heads: expected an integer, got str '4'"]),
    ("other-model-type", "model_type", "gpt2", [f"{CONFIG_KEY}.model_type: expected 'bert'", "got 'gpt2'"]),
]


@pytest.mark.parametrize(("key", "value", "fragments"), [c[1:] for c in STRUCTURE_CASES],
                         ids=[c[0] for c in STRUCTURE_CASES])
def test_tampered_structures_are_one_named_config_error(key, value, fragments, tmp_path):
    folder, _ = _pruned_dir(tmp_path)
    payload = json.loads((folder / "config.json").read_text())
    _tamper(payload, key, value)
    (folder / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ConfigError) as info:
        hfprune.load_pruned(folder)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(("masks", "fragment"), [
    (lambda: {"heads": [torch.ones(4)] * 3}, "compact: masks['heads']: expected one mask per layer (2), got 3"),
    (lambda: {"neurons": [torch.ones(48), torch.ones(50)]},
     "compact: masks['neurons'][1]: expected 48 values (one per neuron left in the layer), got 50"),
], ids=["layer-count", "mask-length"])
def test_masks_that_do_not_fit_the_model_are_one_named_error(masks, fragment):
    from hfprune.pruning.units import UnitKind

    model = tiny_model("bert")
    with pytest.raises(HfpruneError) as info:
        hfprune.compact(model, {UnitKind(kind): value for kind, value in masks().items()})
    assert str(info.value) == fragment


def _wrong_shape(path: Path) -> None:
    weights = load_file(path)
    name = next(n for n in weights if n.endswith("intermediate.dense.weight"))
    weights[name] = torch.zeros(weights[name].shape[0] + 1, weights[name].shape[1])
    save_file(weights, path)


# (id, how the weight file is damaged, fragments of the error)
WEIGHT_CASES = [
    ("shape-mismatch", _wrong_shape, ["intermediate.dense.weight the shape [", "its safetensors weights [",
                                        "expected them to agree"]),
    ("truncated", lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
     ["model.safetensors: not a complete safetensors file"]),
    ("garbage", lambda path: path.write_bytes(b"\x00garbage" * 100), ["model.safetensors: not a complete safetensors"]),
]


@pytest.mark.parametrize(("damage", "fragments"), [c[1:] for c in WEIGHT_CASES], ids=[c[0] for c in WEIGHT_CASES])
def test_damaged_weight_files_name_the_file_and_what_was_expected(damage, fragments, tmp_path):
    folder, _ = _pruned_dir(tmp_path)
    damage(folder / "model.safetensors")
    with pytest.raises(HfpruneError) as info:
        hfprune.load_pruned(folder)
    assert str(folder) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_damaged_compressed_weights_name_the_file(tmp_path):
    model = tiny_model("bert")
    folder = hfprune.save_compressed(model, tmp_path / "compressed")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(HfpruneError, match=r"compressed/model.safetensors: not a complete safetensors file"):
        hfprune.load_compressed(folder)


# ----------------------------------------------------------------- 6. local data folders, checked in the preflight
def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


GOOD = [{"text": f"a fine film number {i}", "label": i % 2} for i in range(40)]


def _with(row_index: int, **changes) -> list:
    rows = copy.deepcopy(GOOD)
    rows[row_index].update(changes)
    return rows


def _csv(rows: list) -> bytes:
    return ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)).encode()


# (id, {file name: bytes}, fragments of the one-line error); the validation file is good unless given
DATA_CASES = [
    ("label-5-in-binary-task", {"train.jsonl": _jsonl(_with(3, label=5))},
     ["train.jsonl:4: label 5 is out of range; expected a class id below 3"]),
    ("validation-label-unseen-in-train", {"validation.jsonl": _jsonl(_with(6, label=2))},
     ["validation.jsonl:7: label 2 is out of range; expected a class id below 2"]),
    ("null-label", {"train.jsonl": _jsonl(_with(0, label=None))},
     ["train.jsonl:1: 'label' is NoneType None; expected an integer class id >= 0"]),
    ("string-label", {"train.jsonl": _jsonl(_with(9, label="positive"))},
     ["train.jsonl:10: 'label' is str 'positive'; expected an integer class id >= 0"]),
    ("null-text", {"train.jsonl": _jsonl(_with(2, text=None))},
     ["train.jsonl:3: 'text' is NoneType None; expected a string"]),
    ("missing-text", {"train.jsonl": _jsonl([*GOOD[:5], {"label": 1}, *GOOD[5:]])},
     ["train.jsonl:6: columns ['label']; expected ['label', 'text'] like line 1"]),
    ("non-utf8", {"train.jsonl": _jsonl(GOOD[:4]) + b'{"text": "caf\xe9", "label": 1}\n' + _jsonl(GOOD[4:])},
     ["train.jsonl:5: not valid UTF-8 (byte 0xe9"]),
    ("truncated-gzip", {"train.jsonl.gz": gzip.compress(_jsonl(GOOD))[:-20]},
     ["train.jsonl.gz: truncated or corrupt gzip file"]),
    ("empty-split", {"validation.jsonl": b""}, ["validation.jsonl: no examples in this split"]),
    ("float-idx-column", {"train.jsonl": _jsonl([{"idx": i, **row} for i, row in enumerate(_with(4, idx=0.5))])},
     ["train.jsonl:5: 'idx' is float 0.5; expected an integer (or a string in every row)"]),
    ("csv-label-5", {"train.csv": _csv(_with(7, label=5))},
     ["train.csv:9: label 5 is out of range; expected a class id below 3"]),
    ("csv-string-label", {"train.csv": _csv(_with(1, label="pos"))},
     ["train.csv:3: 'label' is str 'pos'; expected an integer class id >= 0"]),
]


def _data_folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    defaults = {"train.jsonl": _jsonl(GOOD), "validation.jsonl": _jsonl(GOOD[:20])}
    for stem in {name.split(".")[0] for name in files}:  # a given train.csv replaces the default train.jsonl
        defaults = {k: v for k, v in defaults.items() if k.split(".")[0] != stem}
    for name, data in {**defaults, **files}.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize(("files", "fragments"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_local_data_folders_fail_the_preflight_with_file_and_line(files, fragments, model_dirs, tmp_path, capsys):
    data = _data_folder(tmp_path / "data", files)
    out = tmp_path / "out"
    recipe = _write_recipe(tmp_path, _recipe(model_dirs["good"], out, dataset=str(data)))
    code, err = _cli(capsys, "run", str(recipe))
    _one_line_error(code, err, "run", "data.dataset: ", str(data), *fragments)
    assert not out.exists()  # no folder, no lock, no recipe.json


def test_a_good_local_data_folder_passes_and_loads_with_its_class_ids(model_dirs, tmp_path, capsys):
    """The control case of the table: the same folder unbroken passes --check, and loads with labels 0/1."""
    from hfprune.data import load_dataset

    numbered = [{"idx": i, **row} for i, row in enumerate(GOOD)]
    data = _data_folder(tmp_path / "data", {"train.jsonl": _jsonl(numbered), "validation.jsonl": _jsonl(numbered[:20])})
    recipe = _write_recipe(tmp_path, _recipe(model_dirs["good"], tmp_path / "out", dataset=str(data)))
    assert main(["run", str(recipe), "--check"]) == 0
    assert not (tmp_path / "out").exists()
    train = load_dataset(str(data), "train")
    assert train.features["label"].names == ["0", "1"]
    assert train["label"] == [row["label"] for row in GOOD]
    assert train["text"] == [row["text"] for row in GOOD]
    assert train["idx"] == list(range(len(GOOD)))
    assert load_dataset(str(data), "validation")["label"] == [row["label"] for row in GOOD[:20]]
    csv_folder = tmp_path / "csv"
    csv_folder.mkdir()
    (csv_folder / "train.csv").write_bytes(_csv(GOOD))
    (csv_folder / "dev.csv").write_bytes(_csv(GOOD[:20]))  # "dev" is the validation split, as in GLUE
    loaded = load_dataset(str(csv_folder))
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"]["label"] == [row["label"] for row in GOOD]
    assert loaded["validation"]["text"] == [row["text"] for row in GOOD[:20]]


def test_a_local_data_folder_without_validation_is_evaluated_on_its_test_file(model_dirs, tmp_path):
    """eval_split reads a folder's split files: train + test evaluates on test (it assumed validation, and the
    preflight then refused the folder for a split it never had)."""
    from hfprune.data import eval_split

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_bytes(_jsonl(GOOD))
    (data / "test.jsonl").write_bytes(_jsonl(GOOD[:20]))
    assert eval_split(str(data)) == "test"
    recipe = _write_recipe(tmp_path, _recipe(model_dirs["good"], tmp_path / "out", dataset=str(data)))
    assert main(["run", str(recipe), "--check"]) == 0


def test_a_missing_local_folder_is_named_without_a_hub_fallback(tmp_path):
    from hfprune.data import load_dataset

    with pytest.raises(DataError) as info:
        load_dataset(str(tmp_path / "no-such-folder"), "train")
    assert "no such folder" in str(info.value) and str(tmp_path / "no-such-folder") in str(info.value)
    assert "Hub" not in str(info.value)


# (id, bytes of imdb/train.jsonl.gz, fragments)
IMDB_CASES = [
    ("null-text", gzip.compress(_jsonl([{"text": "good", "label": 1}, {"text": None, "label": 0}])),
     ["imdb/train.jsonl.gz:2: 'text' is NoneType None; expected a string"]),
    ("truncated", gzip.compress(_jsonl(GOOD))[:-20], ["imdb/train.jsonl.gz: truncated or corrupt gzip file"]),
    ("not-gzip", _jsonl(GOOD), ["imdb/train.jsonl.gz: truncated or corrupt gzip file"]),
]


@pytest.mark.parametrize(("data", "fragments"), [c[1:] for c in IMDB_CASES], ids=[c[0] for c in IMDB_CASES])
def test_bad_builtin_imdb_files_name_the_file(data, fragments, tmp_path, monkeypatch):
    from hfprune.data import load_dataset

    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "train.jsonl.gz").write_bytes(data)
    with pytest.raises(DataError) as info:
        load_dataset("imdb", "train", data_dir=tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


# -------------------------------------------------- 5. and 6. model folders: NaN weights, pickled weights only
# (id, model folder, extra recipe sections, fragments)
MODEL_CASES = [
    ("nan-weight", "nan-weight", {}, ["model.name: ", "non-finite input weights found before training: 1 of",
                                     "layer.0.output.dense.weight"]),
    ("pytorch-model-bin-only", "bin-only", {},
     ["model.name: ", "holds only pytorch_model.bin, which hfprune does not load", "expected model.safetensors"]),
    ("min-heads-above-head-count", "good", {"pruning": {"head_sparsity": 0.5, "min_heads_per_layer": 10}},
     ["pruning.min_heads_per_layer: expected fewer than the 4 heads per layer of", "got 10"]),
]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize(("folder", "sections", "fragments"), [c[1:] for c in MODEL_CASES],
                         ids=[c[0] for c in MODEL_CASES])
def test_bad_model_folders_are_refused_up_front(folder, sections, fragments, check, model_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    recipe = _write_recipe(tmp_path, _recipe(model_dirs[folder], out, **sections))
    code, err = _cli(capsys, "run", str(recipe), *(["--check"] if check else []))
    _one_line_error(code, err, "run", *fragments)
    assert not out.exists()


def test_min_heads_above_the_head_count_is_refused_by_the_pruner():
    with pytest.raises(ConfigError, match=r"PruningConfig.min_heads_per_layer: expected fewer than the 4 heads per "
                                          r"layer of BertForSequenceClassification .*got 10"):
        hfprune.StructuredPruner(tiny_model("bert"), hfprune.PruningConfig(head_sparsity=0.5, min_heads_per_layer=10))


# ---------------------------------------------------------------------- 5. non-finite weights and losses
# (command, its own flags) of the commands that train: the pruning (callback) and the dense fine-tuning
DIVERGING = [("prune", ["--teacher", "{good}", "--prune-epochs", "1"]),
             ("finetune", ["--model", "{good}", "--epochs", "1"])]


@pytest.mark.parametrize(("command", "argv"), DIVERGING, ids=[c[0] for c in DIVERGING])
def test_a_diverging_learning_rate_stops_training_and_saves_no_model(command, argv, model_dirs, tmp_path, capsys):
    """The reproduction of the issue: ``--learning-rate 1e30`` used to exit 0 with 41 of 41 tensors NaN."""
    out = tmp_path / "out"
    argv = [a.replace("{good}", str(model_dirs["good"])) for a in argv]
    code, err = _cli(capsys, command, *argv, "--train-samples", "32", "--batch-size", "8", "--max-length", "16",
                     "--learning-rate", "1e30", "--output-dir", str(out))
    line = _one_line_error(code, err, command, f"model {model_dirs['good']}: loss and gradients became non-finite "
                           "during training at step ", "with learning rate ", "no model was saved")
    assert "e+29" in line or "e+30" in line  # the learning rate of that step (after warm-up)
    saved = [p for p in out.rglob("*") if p.name in ("model.safetensors", "report.json", "config.json")] \
        if out.exists() else []
    assert saved == []


def test_prune_with_a_nan_weight_teacher_is_refused_before_writing(model_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _cli(capsys, "prune", "--teacher", str(model_dirs["nan-weight"]), "--output-dir", str(out))
    _one_line_error(code, err, "prune", "teacher: ", "non-finite input weights found before training")
    assert not out.exists()


def _nan_loss_trainer(model, callback, nan_steps: set[int], tmp_path: Path, steps: int = 6):
    """A Trainer of ``steps`` optimizer steps whose loss is NaN at the (1-based) steps in ``nan_steps``."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    class NaNLoss(Trainer):
        def compute_loss(self, *args, **kwargs):
            loss = super().compute_loss(*args, **kwargs)
            return loss * float("nan") if self.state.global_step + 1 in nan_steps else loss

    generator = torch.Generator().manual_seed(0)
    data = Dataset.from_dict({"input_ids": torch.randint(3, 99, (4 * steps, 8), generator=generator).tolist(),
                              "labels": [i % 2 for i in range(4 * steps)]})
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), use_cpu=True, max_steps=steps,
                             per_device_train_batch_size=4, learning_rate=1e-3, report_to="none",
                             save_strategy="no", disable_tqdm=True, logging_steps=1)
    return NaNLoss(model=model, args=args, train_dataset=data, callbacks=[callback])


def _callback(**config) -> hfprune.MovementPruningCallback:
    return hfprune.MovementPruningCallback(hfprune.PruningConfig(
        head_sparsity=0.5, ffn_sparsity=0.5, warmup_ratio=0.0, cooldown_ratio=0.0, mask_update_interval=1,
        compact_on_train_end=False, **config))


def test_callback_stops_at_the_first_non_finite_step_with_step_and_learning_rate(tmp_path):
    model = tiny_model("bert").train()
    trainer = _nan_loss_trainer(model, _callback(), {3}, tmp_path)
    with pytest.raises(NonFiniteError, match=r"model BertForSequenceClassification: loss and gradients became "
                                             r"non-finite during training at step 3 with learning rate 0\.000667 "):
        trainer.train()
    assert trainer.state.global_step == 2


def test_callback_skip_policy_leaves_the_weights_of_skipped_steps_untouched(tmp_path):
    """``on_nonfinite: skip``: a step with a NaN loss changes no weight (the optimizer gets no gradients) and
    scores nothing; every other step trains. With every step NaN, the weights end exactly as they began."""
    model = tiny_model("bert").train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    callback = _callback(on_nonfinite="skip")
    _nan_loss_trainer(model, callback, set(range(1, 7)), tmp_path).train()
    assert callback.guard.skipped_steps == [1, 2, 3, 4, 5, 6]
    assert callback.pruner.scored_steps == 0
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())

    model = tiny_model("bert").train()
    callback = _callback(on_nonfinite="skip")
    _nan_loss_trainer(model, callback, {2, 5}, tmp_path).train()
    assert callback.guard.skipped_steps == [2, 5]
    assert callback.pruner.scored_steps == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_callback_stops_on_weights_that_became_non_finite_by_the_end(tmp_path):
    """Gradients finite at every step, but the last update overflowed a weight: found when training ends, before
    the model is compacted or saved."""
    from transformers import TrainerCallback

    class Overflow(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == state.max_steps:
                with torch.no_grad():
                    model.bert.encoder.layer[1].intermediate.dense.weight[0, 0] = float("inf")

    model = tiny_model("bert").train()
    callback = _callback()
    trainer = _nan_loss_trainer(model, callback, set(), tmp_path)
    trainer.add_callback(Overflow())
    with pytest.raises(NonFiniteError, match=r"model BertForSequenceClassification: weights became non-finite during "
                                             r"training \(found after step 6\): 1 of \d+ "
                                             r"tensors hold NaN or inf \(bert.encoder.layer.1.intermediate.dense."
                                             r"weight\); no model was saved"):
        trainer.train()
    assert callback.pruner.scored_steps == 6


def test_callback_stops_on_finite_weights_that_give_non_finite_outputs(tmp_path):
    """The last update of ``learning_rate: 1e30`` leaves every weight finite but ~1e30: one forward pass on a
    training batch at the end finds it, instead of the evaluation after the model was saved."""
    from transformers import TrainerCallback

    class Explode(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == state.max_steps:
                with torch.no_grad():
                    for parameter in model.parameters():
                        parameter.mul_(1e30)

    model = tiny_model("bert").train()
    trainer = _nan_loss_trainer(model, _callback(), set(), tmp_path)
    trainer.add_callback(Explode())
    before = torch.get_rng_state()
    with pytest.raises(NonFiniteError, match=r"model BertForSequenceClassification: training diverged \(found after "
                                             r"step 6\): the weights are finite but the loss and logits of a "
                                             r"training batch are NaN or inf; no model was saved"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.training  # the check's eval mode is undone
    assert not torch.equal(before, torch.get_rng_state())  # training drew random numbers, but the check does not:
    state = torch.get_rng_state()
    assert _first_batch_outputs(model, trainer.get_train_dataloader()) == ["loss", "logits"]
    assert torch.equal(state, torch.get_rng_state())


def test_a_diverging_recipe_run_stops_in_the_dense_stage_and_saves_no_model(model_dirs, tmp_path, capsys):
    """``hfprune run`` used to fail only in the evaluation, with ``logits: expected finite values``."""
    out = tmp_path / "out"
    recipe = _write_recipe(tmp_path, _recipe(model_dirs["good"], out, training={"learning_rate": 1e30}))
    code, err = _cli(capsys, "run", str(recipe))
    _one_line_error(code, err, "run", f"model {model_dirs['good']}: training diverged (found after step ",
                    "no model was saved")
    assert sorted(p.name for p in out.iterdir()) == [".hfprune.lock", "recipe.json"]  # no stage, no model


def test_callback_refuses_a_model_with_non_finite_input_weights(tmp_path):
    model = tiny_model("bert").train()
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("inf")
    trainer = _nan_loss_trainer(model, _callback(), set(), tmp_path)
    with pytest.raises(NonFiniteError, match=r"model BertForSequenceClassification: non-finite input weights found "
                                             r"before training: 1 of \d+ weight tensors hold NaN or inf "
                                             r"\(classifier.weight\)"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_guard_skip_drops_gradients_and_stop_names_the_step():
    model = tiny_model("bert")
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    model.classifier.bias.grad[0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"at step 7 with learning rate 0\.5 \(classifier.bias\)"):
        NonFiniteGuard("stop").check_gradients(model, 7, 0.5)
    guard = NonFiniteGuard("skip")
    assert guard.check_gradients(model, 7, 0.5) is False
    assert guard.skipped_steps == [7] and all(p.grad is None for p in model.parameters())
    with pytest.raises(ConfigError, match=r"PruningConfig.on_nonfinite: expected one of \['skip', 'stop'\], got "
                                          r"'ignore'"):
        hfprune.PruningConfig(on_nonfinite="ignore")


# -------------------------------------------------------------------------------------------- 8. a full disk
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _safetensors_disk_full(*args, **kwargs):
    """What safetensors' writer raises on a full disk (its own exception type, the OS error in the text)."""
    from safetensors import SafetensorError

    raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                          'left on device" })')


@pytest.mark.parametrize("writer", [_disk_full, _safetensors_disk_full], ids=["oserror", "safetensors-error"])
def test_disk_full_during_save_names_the_folder_and_keeps_the_previous_model(writer, tmp_path, tiny_inputs,
                                                                             monkeypatch):
    import transformers.modeling_utils

    folder, model = _pruned_dir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", writer)
    with pytest.raises(DiskFullError, match=rf"^{folder}: the disk is full \(no space left on device while writing "
                                            r"it\); its previous contents are intact"):
        hfprune.save_pruned(model, folder, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging folder left behind
    with torch.no_grad():
        assert torch.equal(hfprune.load_pruned(folder)(**tiny_inputs).logits, model(**tiny_inputs).logits)


def test_disk_full_in_an_atomic_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    import os

    from hfprune.utils.io import atomic_write_json

    target = tmp_path / "recipe.json"
    atomic_write_json(target, {"before": 1})
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(DiskFullError, match=rf"^{target}: the disk is full .*the previous file, if any, is intact"):
        atomic_write_json(target, {"after": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"before": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


def test_disk_full_in_a_recipe_stage_names_the_stage_and_keeps_it(tmp_path):
    from hfprune.pipeline.results import STAGE_FILE
    from hfprune.pipeline.stage_folder import run_stage

    stage = tmp_path / "dense"
    stage.mkdir()
    (stage / STAGE_FILE).write_text("{}")  # a previous (different) result, replaced only by a finished one

    def compute(staging: Path):
        (staging / "model").mkdir()
        _disk_full()

    with pytest.raises(DiskFullError, match=rf"^{stage}: the disk is full .*its previous contents are intact"):
        run_stage(stage, "fingerprint", compute, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense"]
    assert (stage / STAGE_FILE).read_text() == "{}"


def test_on_nonfinite_is_a_recipe_key_that_leaves_fingerprints_alone(tmp_path):
    """A finished stage met no non-finite step, so the policy does not change its result: recipes written before
    the option existed keep their fingerprints (and their finished stages)."""
    from hfprune.recipes.schema import Recipe

    base = _recipe(Path("model"), tmp_path / "out")
    default = Recipe.from_dict(base)
    skip = Recipe.from_dict({**base, "pruning": {"head_sparsity": 0.5, "on_nonfinite": "skip"}})
    assert skip.pruning.on_nonfinite == "skip" and default.pruning.on_nonfinite == "stop"
    assert skip.fingerprint() == Recipe.from_dict({**base, "pruning": {"head_sparsity": 0.5}}).fingerprint()
    assert "on_nonfinite" not in default.result_dict()["pruning"]
    with pytest.raises(ConfigError, match=r"^pruning.on_nonfinite: expected one of \['skip', 'stop'\], got 'nan'$"):
        Recipe.from_dict({**base, "pruning": {"on_nonfinite": "nan"}})
