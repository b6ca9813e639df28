"""``training.dense_epochs: 0``: the loaded pretrained model is the dense model (no fine-tune), on a tiny random
Llama decoder with grouped-query attention and WikiText-103 (validation to train on, test to evaluate): the dense
stage holds exactly the loaded weights, the pruned level trains on a recorded draw of the training split, and the
settings that need a dense fine-tune are refused, naming the key, before anything is written. With dense_epochs > 0
and canaries (the path of recipes/smollm2-canaries-offline.yaml), the pretrained Llama is fine-tuned, pruned, and its
audits recompute from the plainly reloaded model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from hfprune.audit.privacy.lm import train_tokenizer
from hfprune.audit.privacy.split import MembershipSplit
from hfprune.errors import ConfigError
from hfprune.hub.card import build_model_card
from hfprune.pipeline.runner import RecipeRunner, run_recipe
from hfprune.recipes.schema import Recipe

torch.set_num_threads(1)

WIKITEXT = "wikitext/wikitext-103-raw-v1"


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (4 query heads in 2 key/value groups) with a byte-level tokenizer, saved."""
    from hfprune.data import load_dataset

    tokenizer = train_tokenizer(list(load_dataset(WIKITEXT, "validation")["text"][:200]), vocab_size=400)
    model = tiny_model("llama", "causal_lm", vocab_size=len(tokenizer), num_key_value_heads=2,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    target = tmp_path_factory.mktemp("llama") / "tiny-llama"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _payload(model_dir: Path, out: Path, **training) -> dict:
    return {
        "name": "tiny-pretrained",
        "model": {"name": str(model_dir), "task": "causal-lm"},
        "data": {"dataset": WIKITEXT, "train_split": "validation", "eval_split": "test", "train_samples": 16,
                 "eval_samples": 8, "max_length": 16},
        "training": {"dense_epochs": 0, "prune_epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "threads": 1,
                     **training},
        "pruning": {"head_sparsity": 0.5, "ffn_sparsity": 0.5, "scoring": "magnitude", "allocation": "uniform",
                    "head_granularity": "query"},
        "audits": {"robustness": {"enabled": False}, "privacy": {"enabled": False, "n_nonmembers": 8},
                   "latency_rounds": 0},
        "output": {"dir": str(out)},
    }


def test_pretrained_model_is_the_dense_stage_and_the_level_trains_on_a_recorded_draw(tiny_llama_dir, tmp_path):
    from hfprune.audit.model_audit import load_model_dir

    out = tmp_path / "run"
    recipe = Recipe.from_dict(_payload(tiny_llama_dir, out))
    dense, (pruned,) = run_recipe(recipe)

    assert dense.seconds.keys() == {"loading", "evaluation", "audit"}  # no training
    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    saved = load_model_dir(out / "dense" / "model")
    assert saved.split is None  # the dense model trained on no member: nothing recorded beside it
    assert original.state_dict().keys() == saved.model.state_dict().keys()
    assert all(torch.equal(v, saved.model.state_dict()[k]) for k, v in original.state_dict().items())
    ids = torch.randint(3, 400, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(original(ids).logits, saved.model(ids).logits)

    # the student trained on train_samples texts of the validation split, recorded beside it; evaluated on test
    split = MembershipSplit.load(out / "pruned" / "model")
    assert (split.source_split, split.n_members, split.n_nonmembers) == ("validation", 16, 8)
    assert split.member_texts == RecipeRunner(recipe).members().member_texts  # seeded: the same draw again
    assert dense.quality["split"] == pruned.quality["split"] == "test"
    assert dense.quality["n_examples"] == pruned.quality["n_examples"] > 0
    # 4 query heads in 2 groups, half removed uniformly: 2 per layer, FFN 48 -> 24
    config = json.loads((out / "pruned" / "model" / "config.json").read_text())
    assert (config["num_attention_heads"], config["intermediate_size"]) == (2, 24)
    # report and model card say the dense model was not fine-tuned
    report = (out / "report.md").read_text()
    assert (f"Dense model: {tiny_llama_dir} as loaded, not fine-tuned; each pruned model starts from it and is pruned "
            f"with magnitude scores for 1 epoch on 16 {WIKITEXT} validation examples") in report
    card = str(build_model_card(out / "pruned" / "model", "alice/tiny"))
    assert ("- Dense model: the base model as loaded, not fine-tuned; pruning: 1 epoch on 16 examples (max length 16, "
            "batch 8, learning rate 0.001, seed 0).") in card


@pytest.mark.parametrize(("model", "audits", "message"), [
    (None, {"privacy": {"enabled": True, "n_nonmembers": 8}},
     "audits.privacy.enabled: training.dense_epochs 0 keeps the loaded model as the dense model, which never trained "
     "on recorded members or canaries; expected false (or dense_epochs > 0)"),
    ({"name": None, "task": "causal-lm"}, None,
     "training.dense_epochs: 0 uses model.name as the dense model, but model.name is null (a GPT-2 built here must be "
     "trained); expected dense_epochs > 0"),
])
def test_settings_that_need_a_dense_fine_tune_are_refused_before_writing(tiny_llama_dir, tmp_path, model, audits,
                                                                         message):
    payload = _payload(tiny_llama_dir, tmp_path / "run")
    if model is not None:
        payload["model"] = model
    if audits is not None:
        payload["audits"] = {**payload["audits"], **audits}
    with pytest.raises(ConfigError) as error:
        Recipe.from_dict(payload)
    assert str(error.value) == message
    assert not (tmp_path / "run").exists()


def test_too_few_training_rows_are_refused_in_preflight(tiny_llama_dir, tmp_path):
    recipe = Recipe.from_dict({**_payload(tiny_llama_dir, tmp_path / "run"),
                               "data": {**_payload(tiny_llama_dir, tmp_path)["data"], "train_samples": 100_000}})
    with pytest.raises(ConfigError, match=r"^data\.train_samples: expected train_samples"):
        RecipeRunner(recipe).preflight([])
    assert not (tmp_path / "run").exists()


def test_a_pretrained_classifier_is_the_dense_stage_too(tiny_model_dir, tmp_path):
    from helpers import tiny_payload

    payload = tiny_payload(tiny_model_dir, tmp_path / "run", head_sparsity=0.5)
    payload["training"]["dense_epochs"] = 0
    payload["audits"] = {"robustness": {"enabled": False}, "privacy": {"enabled": False, "n_nonmembers": 32},
                         "latency_rounds": 0}
    dense, (pruned,) = run_recipe(Recipe.from_dict(payload))

    original = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).state_dict()
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "dense" / "model").state_dict()
    assert original.keys() == saved.keys() and all(torch.equal(v, saved[k]) for k, v in original.items())
    split = MembershipSplit.load(tmp_path / "run" / "pruned" / "model")
    assert (split.source_split, split.n_members, split.n_nonmembers) == ("train", 32, 32)
    assert split.member_labels is not None and pruned.sparsity["heads_kept"] == 4


def _log2_perplexity(model, tokenizer, text: str, max_length: int | None = None) -> tuple[float, int]:
    """-log2 Pr(text) summed over its predicted tokens, one text at a time (no padding), and how many there were."""
    ids = tokenizer(text, truncation=max_length is not None, max_length=max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        log_probs = model(ids).logits[0, :-1].double().log_softmax(-1)
    picked = log_probs.gather(-1, ids[0, 1:, None])[:, 0]
    return float(-picked.sum() / np.log(2)), int(picked.numel())


def test_a_pretrained_llama_fine_tuned_with_canaries_then_pruned_keeps_audits_that_recompute(tiny_llama_dir,
                                                                                             tmp_path):
    """The SmolLM2 canary recipe's path on a tiny GQA Llama: fine-tune the pretrained model on members plus canaries
    (dense_epochs > 0), prune query heads and FFN uniformly with distillation; the pruned model loads with plain
    ``from_pretrained`` and its reported exposures and loss-attack AUC equal those recomputed one text at a time."""
    from sklearn.metrics import roc_auc_score

    from hfprune.audit.privacy.canaries import CanarySet

    out = tmp_path / "run"
    payload = _payload(tiny_llama_dir, out, dense_epochs=1)
    payload["data"] = {"dataset": "jane_austen", "train_samples": 16, "eval_samples": 8, "max_length": 16}
    payload["audits"]["privacy"] = {"attacks": ["loss"], "n_nonmembers": 8, "n_resamples": 0,
                                    "canaries": {"repetitions": [0, 4], "per_repetition": 2, "digits": 2}}
    dense, (pruned,) = run_recipe(Recipe.from_dict(payload))

    assert dense.seconds["training"] > 0  # fine-tuned, not the loaded model
    model_dir = out / "pruned" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["num_attention_heads"], config["intermediate_size"]) == (2, 24)  # of 4 query heads, FFN 48
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()  # plain transformers, no hfprune
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    canaries, split = CanarySet.load(model_dir), MembershipSplit.load(model_dir)
    assert canaries.canaries == CanarySet.load(out / "dense" / "model").canaries
    assert sorted(c.repetitions for c in canaries.canaries) == [0, 0, 4, 4] and canaries.space_size == 100

    (report,) = json.loads((out / "pruned" / "audit" / "privacy" / "privacy_report.json").read_text())["entries"]
    everything = np.array([_log2_perplexity(model, tokenizer, canaries.text(s))[0]
                           for s in canaries.enumerate_secrets()])
    for entry in report["exposure"]:
        secrets = [c.secret for c in canaries.canaries if c.repetitions == entry["repetitions"]]
        ranks = [int(np.sum(everything <= _log2_perplexity(model, tokenizer, canaries.text(s))[0] + 1e-9))
                 for s in secrets]
        np.testing.assert_allclose(entry["exposures"], np.log2(100) - np.log2(ranks))

    def mean_nll(text: str) -> float:
        bits, n = _log2_perplexity(model, tokenizer, text, max_length=16)
        return bits * np.log(2) / n

    scores = [-mean_nll(text) for text in [*split.member_texts, *split.nonmember_texts]]
    expected = roc_auc_score([1] * split.n_members + [0] * split.n_nonmembers, scores)
    (loss,) = [entry for entry in report["membership"] if entry["attack"] == "loss"]
    assert loss["auc"]["value"] == pytest.approx(expected, abs=1e-12)
