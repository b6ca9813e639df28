"""Model cards: the generated card parses with huggingface_hub.ModelCard, its model-index holds the task metric,
attack success rates and membership-inference AUC with the values the run measured, and its sections describe the
pruning, the structure kept, loading with and without hfprune, and framework versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL

REPO_ID = "alice/minilm-sst2-pruned"
ACCURACY = 0.8125
# constructed attack log: 3 flipped, 1 survived, 1 already wrong -> success rate 3 / 4
OUTCOMES = ["successful", "successful", "successful", "failed", "skipped"]
# members score higher except 0.6 < 0.65: 15 of 16 member/non-member pairs ordered -> AUC 0.9375
MEMBER_SCORES, NONMEMBER_SCORES = [0.9, 0.8, 0.7, 0.6], [0.65, 0.5, 0.4, 0.3]


def tiny_pruned_model_dir(root: Path) -> Path:
    """A tiny BERT classifier with MiniLM's tokenizer, half its heads and FFN neurons pruned, saved by hfprune."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    import hfprune
    from hfprune.models import resolve_model

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=128, num_labels=2)).eval()
    config = hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude")
    hfprune.prune(model, config)
    target = root / "pruned" / "model"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    hfprune.save_pruned(model, target, pruning_config=config, processing_class=tokenizer)
    (target / "membership_split.json").write_text("{}")  # stands for the recorded split: must never be uploaded
    return target


def constructed_audit(name: str, scale: float = 1.0):
    """A ModelAudit whose numbers are known: ASR 0.75 (deepwordbug), MIA AUC 0.9375 (loss attack)."""
    from hfprune.audit.model_audit import ModelAudit
    from hfprune.audit.privacy.report import GeneralizationGap, PrivacyEntry
    from hfprune.audit.results import summarize_attack_log, summarize_membership

    robustness = summarize_attack_log(OUTCOMES, np.full(5, 10.0), np.full(5, 30.0), model_name=name, sparsity=0.5,
                                      recipe="deepwordbug", query_budget=300, n_resamples=0)
    scores = np.array(MEMBER_SCORES + NONMEMBER_SCORES) * scale
    membership = summarize_membership(scores, np.array([1, 1, 1, 1, 0, 0, 0, 0], bool), model_name=name,
                                      sparsity=0.5, attack="loss", n_resamples=0)
    gap = GeneralizationGap(0.95, 0.8, 0.1, 0.5, 4, 4)
    return ModelAudit(name, 0.5, [robustness], None, PrivacyEntry(name, 0.5, gap, [membership]),
                      dataset="glue/sst2", split="validation")


def write_results(model_dir: Path) -> None:
    """hfprune_results.json as ``hfprune run`` writes it (built by the runner's own code)."""
    from hfprune.pipeline.runner import RecipeRunner, StageResult
    from hfprune.recipes.schema import Recipe

    recipe = Recipe.from_dict({"name": "t", "model": {"name": "minilm"}, "data": {"train_samples": 1000}})
    sparsity = json.loads((model_dir / "pruning_report.json").read_text())
    quality = {"metric": "accuracy", "value": ACCURACY, "n_examples": 872, "split": "validation",
               "higher_is_better": True, "extra": {}}
    pruned = StageResult("pruned", "pruned", None, "f", {}, "model", quality, sparsity,
                         constructed_audit("pruned").to_dict(), {"training": 1.0},
                         latency={"seq_len": 128, "batch_size": 1, "rounds": 5, "threads": 1, "dense_ms": 20.0,
                                  "pruned_ms": 10.0, "speedup": 2.0})
    dense = StageResult("dense", "dense", None, "f", {}, "model", {**quality, "value": 0.84}, sparsity,
                        constructed_audit("dense").to_dict(), {})
    payload = RecipeRunner(recipe).model_results(pruned, dense)
    (model_dir / "hfprune_results.json").write_text(json.dumps(payload))


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory) -> Path:
    model_dir = tiny_pruned_model_dir(tmp_path_factory.mktemp("card"))
    write_results(model_dir)
    return model_dir


def _metrics(card: ModelCard) -> dict[str, tuple[float, str]]:
    return {(r.metric_name or r.metric_type): (r.metric_value, r.metric_type, r.dataset_split)
            for r in card.data.eval_results}


def test_card_parses_and_model_index_holds_the_measured_metrics(pruned_dir, tmp_path):
    from hfprune.hub.card import build_model_card

    path = tmp_path / "README.md"
    build_model_card(pruned_dir, REPO_ID).save(path)
    card = ModelCard.load(path)

    assert card.data.library_name == "hfprune"
    assert card.data.base_model == DEFAULT_MODEL
    assert {"hfprune", "pruning", "transformers", "text-classification"} <= set(card.data.tags)
    assert card.data.datasets == ["nyu-mll/glue"]
    assert card.data.model_name == "minilm-sst2-pruned"
    metrics = _metrics(card)
    assert metrics["Accuracy (872 examples)"] == (ACCURACY, "accuracy", "validation")
    assert metrics["Attack success rate (deepwordbug, 5 examples)"] == (0.75, "attack_success_rate", "validation")
    assert metrics["Membership inference AUC (loss attack)"] == (0.9375, "roc_auc", "train")
    assert {r.dataset_type for r in card.data.eval_results} == {"nyu-mll/glue"}
    assert {r.dataset_config for r in card.data.eval_results} == {"sst2"}
    model_index = card.data.to_dict()["model-index"]
    assert model_index[0]["name"] == "minilm-sst2-pruned" and len(model_index[0]["results"]) == 2


def test_card_sections_describe_procedure_structure_loading_and_versions(pruned_dir):
    import transformers

    from hfprune.hub.card import build_model_card

    text = build_model_card(pruned_dir, REPO_ID).text
    for heading in ("## Results", "## Robustness and privacy audit", "## Pruning procedure", "## Structure kept",
                    "## How to load", "## Framework versions"):
        assert heading in text
    assert f'load_pruned("{REPO_ID}")' in text
    assert f'export_dense(load_pruned("{REPO_ID}"), "dense-export")' in text
    assert 'AutoModelForSequenceClassification.from_pretrained("dense-export")' in text
    assert f"- transformers: {transformers.__version__}" in text
    assert "- Scores: `magnitude`" in text and "alpha 0.5, temperature 2" in text
    structure = json.loads((pruned_dir / "config.json").read_text())["hfprune_structure"]
    for layer, heads in enumerate(structure["kept_heads"]):
        neurons = len(structure["kept_neurons"][layer])
        assert f"| {layer} | {len(heads)}/4 | {', '.join(map(str, heads))} | {neurons}/48 |" in text
    assert "| dense | 0.8400 |" in text and "| pruned (this model) | 0.8125 |" in text
    assert "AUC 0.938 (dense model: 0.938)" in text


def test_card_with_dense_export_says_how_to_load_it(pruned_dir):
    from hfprune.hub.card import build_model_card

    text = build_model_card(pruned_dir, REPO_ID, dense_export=True).text
    assert f'from_pretrained("{REPO_ID}", subfolder="dense-export")' in text


def test_card_from_a_standalone_audit(tmp_path):
    """A pruned model without run results: the metrics of an `hfprune audit` folder go into model-index."""
    from hfprune.hub.card import build_model_card

    model_dir = tiny_pruned_model_dir(tmp_path)
    constructed_audit("pruned").save(tmp_path / "audit")
    card = build_model_card(model_dir, REPO_ID, audit_dir=tmp_path / "audit")
    metrics = _metrics(ModelCard(str(card)))
    assert metrics == {"Attack success rate (deepwordbug, 5 examples)": (0.75, "attack_success_rate", "validation"),
                       "Membership inference AUC (loss attack)": (0.9375, "roc_auc", "train")}
    assert card.data.base_model is None  # no run results: the base model is unknown, not guessed


def test_token_never_appears_in_the_card(pruned_dir, monkeypatch):
    from hfprune.hub.card import build_model_card

    secret = "hf_" + "s3cr3t" * 6
    monkeypatch.setenv("HF_TOKEN", secret)
    assert secret not in str(build_model_card(pruned_dir, REPO_ID))


def test_a_dense_model_has_no_pruned_card(tmp_path):
    from hfprune.hub.card import build_model_card

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    with pytest.raises(ConfigError, match=r"is not a pruned hfprune model \(no hfprune_structure in config\.json\)"):
        build_model_card(tmp_path, REPO_ID)
