"""Model cards: the generated card parses with huggingface_hub.ModelCard, its model-index holds the task metric,
attack success rates and membership-inference AUC with the values the run measured, and its sections describe the
pruning, the structure kept, loading with and without hfprune, and framework versions."""

from __future__ import annotations

import json

import pytest
from helpers import ACCURACY, REPO_ID, constructed_audit, tiny_pruned_model_dir
from huggingface_hub import ModelCard

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL


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


def test_card_opens_with_what_pruning_changed(pruned_dir):
    from hfprune.hub.card import build_model_card

    text = str(build_model_card(pruned_dir, REPO_ID))
    assert text.index("## What pruning changed") < text.index("## Results")
    # dense and pruned audits are constructed alike: the same 4 attacked examples, the same membership scores
    # no discordant pair among 4: +- 1 - 0.025^(1/4) = 0.602, the most a discordance rate of 0/4 allows
    assert ("- attack success (deepwordbug, on examples both classify correctly): **no detectable change**, +0.000 "
            "[-0.602, +0.602], p = 1.000 (Holm p = 1.000); dense 0.750, pruned 0.750, n = 4") in text
    assert "- MIA AUC (loss): **no detectable change**, +0.000 [+0.000, +0.000], p = 1.000" in text


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
