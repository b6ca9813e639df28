"""Model cards: the generated card parses with huggingface_hub.ModelCard and follows the Hub's conventions
(base_model, license and language inherited from the base model's card, library_name, pipeline_tag, tags), its
model-index holds the task metric, attack success rates and membership-inference AUC with the values the run
measured, its sections describe the pruning of any pruned folder (``save_pruned`` in a user's script, ``hfprune
prune``, ``hfprune run``) from what the files show, and its usage code runs and gives load_pruned's logits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import ACCURACY, REPO_ID, constructed_audit, tiny_bert, tiny_pruned_model_dir
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

    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert card.data.base_model == DEFAULT_MODEL
    # inherited from the embedded MiniLM's own card (its README.md front matter), not invented
    assert (card.data.license, card.data.language) == ("apache-2.0", "en")
    assert {"hfprune", "pruning", "structured-pruning", "text-classification"} <= set(card.data.tags)
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
    # the metadata survives huggingface_hub's own parse of the rendered text
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()


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
    assert "- Scoring: `magnitude`" in text and "alpha 0.5, temperature 2" in text
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
    # no run results: base model, license and language are unknown, not guessed
    assert card.data.to_dict().keys().isdisjoint({"base_model", "license", "language"})
    assert "| deepwordbug (5 examples, budget 300) | 0.750 [0.194, 0.994] | not audited |" in card.text
    assert "fine-tuned on" not in card.text and "trained on" not in card.text  # audited on it, not trained on it


def test_a_folder_saved_by_a_users_own_script_gets_its_procedure_from_the_files(tmp_path):
    """save_pruned in a user's script: no run results, no report; every number comes from the saved files."""
    from hfprune.hub.card import build_model_card

    model_dir = tiny_pruned_model_dir(tmp_path)
    structure = json.loads((model_dir / "config.json").read_text())["hfprune_structure"]
    report = json.loads((model_dir / "pruning_report.json").read_text())
    card = build_model_card(model_dir, REPO_ID)
    text = card.text
    assert [len(k) for k in structure["kept_heads"]] == [2, 2]
    assert [len(k) for k in structure["kept_neurons"]] == [24, 24]
    assert ("- Kept per layer: attention heads 2 of 4 in each of the 2 layers; FFN neurons 24 of 48 in each of the 2 "
            "layers.") in text
    assert (f"- Removed: 4 of 8 attention heads and 48 of 96 FFN neurons; parameters {report['params_dense']:,} -> "
            f"{report['params']:,} (-{100 * report['param_sparsity']:.1f}%), transformer-layer FLOPs -50.0% "
            "(sequence length 128).") in text
    assert "- Scoring: `magnitude` (global allocation); target sparsity 50% of heads, 50% of FFN neurons." in text
    assert "- Schedule: cubic ramp after 10% warm-up" in text
    assert "A structurally pruned bert model: attention heads and FFN neurons removed with hfprune." in text
    assert "trained on" not in text and "fine-tuned" not in text and "## Results" not in text
    assert card.data.library_name == "transformers" and card.data.eval_results is None


def test_per_layer_counts_are_listed_unless_every_layer_agrees():
    from hfprune.hub.card import _per_layer

    assert _per_layer([2, 3, 4], 4) == "2, 3, 4 (of 4 each)"
    assert _per_layer([24] * 12, 48) == "24 of 48 in each of the 12 layers"


def test_a_prune_command_folder_fills_the_dense_column_from_its_report(tmp_path):
    """``hfprune prune`` writes report.json beside pruned/: the card's dense column and accuracy come from it."""
    from hfprune.hub.card import build_model_card

    model_dir = tiny_pruned_model_dir(tmp_path)
    sparsity = json.loads((model_dir / "pruning_report.json").read_text())
    (model_dir.parent / "report.json").write_text(json.dumps({
        "dense_accuracy": 0.9, "pruned_accuracy": 0.875, "sparsity": sparsity, "dense_dir": "out/dense",
        "pruned_dir": f"out/{model_dir.name}", "seconds": {}, "dataset": "glue/sst2", "base_model": "minilm"}))
    card = build_model_card(model_dir, REPO_ID)
    assert f"| dense | 0.9000 | {sparsity['params_dense']:,} |" in card.text
    assert f"| pruned (this model) | 0.8750 | {sparsity['params']:,} |" in card.text
    assert "A structurally pruned version of `sentence-transformers/all-MiniLM-L6-v2` fine-tuned on `glue/sst2`" \
        in card.text
    assert _metrics(card) == {"Accuracy": (0.875, "accuracy", None)}
    assert card.data.base_model == DEFAULT_MODEL and card.data.datasets == ["nyu-mll/glue"]
    # a report.json naming another folder says nothing about this one
    (model_dir.parent / "report.json").write_text(json.dumps({"pruned_accuracy": 0.1, "pruned_dir": "elsewhere"}))
    assert "## Results" not in build_model_card(model_dir, REPO_ID).text


def _usage_snippets(text: str, repo_id: str, folder: Path) -> list[str]:
    section = text.split("## How to load", 1)[1].split("\n## ", 1)[0]
    return [code.replace(f'"{repo_id}"', repr(str(folder)))
            for code in re.findall(r"```python\n(.*?)```", section, flags=re.S)]


def _run_snippet(code: str) -> torch.nn.Module:
    scope: dict = {}
    exec(compile(code, "<model card>", "exec"), scope)  # noqa: S102 - the card's own usage code, run as a user would
    return scope["model"].eval()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])).logits


@pytest.mark.parametrize("uniform", [False, True], ids=["heads-pruned", "ffn-only-uniform"])
def test_the_cards_usage_code_runs_and_gives_load_pruneds_logits(tmp_path, monkeypatch, uniform):
    """Every snippet of How to load, with the repo id replaced by the local folder. Plain from_pretrained is offered
    exactly when config.json states every layer's widths (here: FFN-only pruning with uniform allocation)."""
    import hfprune
    from hfprune.hub.card import build_model_card

    if uniform:
        model = tiny_bert().eval()
        config = hfprune.PruningConfig(head_sparsity=0.0, ffn_sparsity=0.5, allocation="uniform",
                                       scoring="magnitude")
        hfprune.prune(model, config)
        model_dir = hfprune.save_pruned(model, tmp_path / "model", pruning_config=config)
    else:
        model_dir = tiny_pruned_model_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # the export snippet writes dense-export/ into the working directory
    text = build_model_card(model_dir, REPO_ID).text
    snippets = _usage_snippets(text, REPO_ID, model_dir)
    plain = [code for code in snippets if "load_pruned" not in code]
    assert len(plain) == int(uniform)
    # a tokenizer line only where one was saved (tiny_pruned_model_dir saves MiniLM's; the uniform model has none)
    assert ("AutoTokenizer.from_pretrained" in snippets[0]) is not uniform
    expected = _logits(hfprune.load_pruned(model_dir))
    for code in snippets:
        assert torch.allclose(_logits(_run_snippet(code)), expected, atol=1e-5), code


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


def test_license_and_language_come_from_the_base_models_cached_card_or_are_omitted(tmp_path, monkeypatch):
    """A Hub base model: its card in the local HF cache gives license and language; not cached, they are left out."""
    import huggingface_hub.constants

    from hfprune.hub.card import build_model_card

    model_dir = tiny_pruned_model_dir(tmp_path)
    (model_dir / "hfprune_results.json").write_text(json.dumps({"base_model": "org/base", "dataset": "glue/sst2"}))
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert build_model_card(model_dir, REPO_ID).data.to_dict().keys().isdisjoint({"license", "language"})

    snapshot = cache / "models--org--base" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--org--base" / "refs").mkdir()
    (cache / "models--org--base" / "refs" / "main").write_text("0" * 40)
    (snapshot / "README.md").write_text("---\nlicense: mit\nlanguage:\n- fr\n---\n# base\n")
    data = build_model_card(model_dir, REPO_ID).data
    assert (data.base_model, data.license, data.language) == ("org/base", "mit", ["fr"])


def test_the_card_of_an_hfprune_prune_folder_reports_what_its_report_measured(tmp_path):
    """``hfprune prune --teacher DIR``: report.json beside pruned/ names the dataset; the teacher's origin is
    unknown, so the card has no base_model."""
    from helpers import minilm_tokenizer

    from hfprune.hub.card import build_model_card
    from hfprune.pipeline.prune_classifier import PruneClassifierConfig, prune_classifier

    dense = tmp_path / "dense"
    tiny_bert().save_pretrained(dense)
    minilm_tokenizer().save_pretrained(dense)
    result = prune_classifier(PruneClassifierConfig(
        teacher=str(dense), train_samples=16, prune_epochs=1.0, max_length=16, batch_size=8, learning_rate=1e-3,
        scoring="magnitude", output_dir=str(tmp_path / "out")))
    assert (result.dataset, result.base_model) == ("glue/sst2", None)
    card = build_model_card(result.pruned_dir, REPO_ID)
    assert f"| dense | {result.dense_accuracy:.4f} | {result.sparsity['params_dense']:,} |" in card.text
    assert f"| pruned (this model) | {result.pruned_accuracy:.4f} | {result.sparsity['params']:,} |" in card.text
    assert "A structurally pruned bert model fine-tuned on `glue/sst2`" in card.text
    assert _metrics(card) == {"Accuracy": (round(result.pruned_accuracy, 4), "accuracy", None)}
    assert card.data.base_model is None and card.data.datasets == ["nyu-mll/glue"]
