"""Pruned models and plain transformers: what a pruned folder tells a user who loads it without hfprune, the tokenizer
travelling with ``save_pruned`` / ``export_dense`` so ``pipeline`` works on the folder alone, and the task heads
beyond sequence classification (QA, token classification, masked LM) pruning and reloading."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import tiny_config, tiny_model
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertTokenizerFast,
    pipeline,
)

from hfprune import PruningConfig, export_dense, load_pruned, save_pruned
from hfprune.pruning.companions import LOADING_KEY
from hfprune.pruning.pruner import StructuredPruner

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["good", "bad", "film", "the", "a", "very", "not", "plot", "acting", "fine"]


def _tokenizer(tmp_path) -> BertTokenizerFast:
    """A WordPiece tokenizer of the tiny models' 99-token vocabulary, built offline from a vocab file."""
    vocab = SPECIAL + WORDS + [f"tok{i}" for i in range(99 - len(SPECIAL) - len(WORDS))]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab_file=str(path))


def _pruned(model, head_sparsity=0.5, ffn_sparsity=0.5, seed=3):
    """``model`` with random-score masks at the given sparsities applied; returns the pruner (masks attached)."""
    pruner = StructuredPruner(model, PruningConfig(head_sparsity=head_sparsity, ffn_sparsity=ffn_sparsity,
                                                   scoring="random", seed=seed))
    pruner.update_masks(10, 10)
    return pruner


def _compacted_classifier():
    model = tiny_model("bert", seed=0)
    _pruned(model).compact()
    return model.eval()


def test_pruned_folder_says_how_to_load_it(tmp_path, caplog):
    model = _compacted_classifier()
    with caplog.at_level(logging.WARNING, logger="hfprune"):
        save_pruned(model, tmp_path / "pruned")
    assert any("hfprune.load_pruned" in r.getMessage() and "export_dense" in r.getMessage() for r in caplog.records)
    readme = (tmp_path / "pruned" / "README.md").read_text(encoding="utf-8")
    assert f'hfprune.load_pruned("{tmp_path / "pruned"}")' in readme and "export_dense" in readme
    assert "hfprune.load_pruned" in json.loads((tmp_path / "pruned" / "config.json").read_text())[LOADING_KEY]
    # what plain transformers 5.24 does with it: a size-mismatch error (no hook lets a checkpoint add to it)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned")
    reloaded = load_pruned(tmp_path / "pruned")
    assert not hasattr(reloaded.config, LOADING_KEY)  # the hint is for the folder, not the model
    export_dense(reloaded, tmp_path / "dense")
    assert LOADING_KEY not in json.loads((tmp_path / "dense" / "config.json").read_text())
    assert not (tmp_path / "dense" / "README.md").exists()


def _pipeline_scores(folder, texts):
    classify = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    return [{d["label"]: d["score"] for d in row} for row in classify(texts)]


def test_tokenizer_travels_so_pipeline_works_on_the_folder_alone(tmp_path):
    """An explicit tokenizer goes into save_pruned's folder; load_pruned of that folder remembers where it came
    from, so export_dense copies the tokenizer without being given one; pipeline on the export then gives the
    pruned model's own probabilities."""
    tokenizer = _tokenizer(tmp_path)
    model = _compacted_classifier()
    save_pruned(model, tmp_path / "pruned", processing_class=tokenizer)
    assert BertTokenizerFast.from_pretrained(tmp_path / "pruned").get_vocab() == tokenizer.get_vocab()
    export_dense(load_pruned(tmp_path / "pruned"), tmp_path / "dense")
    texts = ["the film good", "not a very fine plot tok7"]
    with torch.no_grad():
        expected = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits.softmax(-1)
    got = _pipeline_scores(tmp_path / "dense", texts)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert torch.allclose(torch.tensor([[row[label] for label in labels] for row in got]), expected, atol=1e-5)


def test_tokenizer_of_the_source_folder_travels_with_save_pruned(tmp_path):
    tokenizer = _tokenizer(tmp_path)
    tiny_model("bert").save_pretrained(tmp_path / "dense-source")
    tokenizer.save_pretrained(tmp_path / "dense-source")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "dense-source")
    _pruned(model).compact()
    save_pruned(model, tmp_path / "pruned")
    assert BertTokenizerFast.from_pretrained(tmp_path / "pruned").get_vocab() == tokenizer.get_vocab()


def test_no_tokenizer_known_saves_none(tmp_path):
    save_pruned(_compacted_classifier(), tmp_path / "pruned")
    assert not (tmp_path / "pruned" / "tokenizer_config.json").exists()


HEADS = {"question_answering": AutoModelForQuestionAnswering, "token_classification": AutoModelForTokenClassification,
         "masked_lm": AutoModelForMaskedLM}


def _outputs(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits])
    return out.logits


@pytest.mark.parametrize("task", sorted(HEADS))
def test_other_task_heads_prune_compact_and_reload(tmp_path, task, tiny_inputs):
    """BERT with a QA, token-classification or masked-LM head: masked == compacted == reloaded outputs."""
    torch.manual_seed(0)
    model = HEADS[task].from_config(tiny_config("bert", num_labels=2)).eval()
    dense = _outputs(model, tiny_inputs)
    pruner = _pruned(model)
    masked = _outputs(model, tiny_inputs)
    assert not torch.allclose(masked, dense, atol=1e-4)  # the masks change the function
    pruner.compact()
    compacted = _outputs(model, tiny_inputs)
    assert (compacted - masked).abs().max() < 1e-4
    save_pruned(model, tmp_path / task)
    reloaded = load_pruned(tmp_path / task)
    assert type(reloaded) is type(model)
    assert torch.equal(_outputs(reloaded, tiny_inputs), compacted)
    export_dense(reloaded, tmp_path / f"{task}-dense")
    plain = HEADS[task].from_pretrained(tmp_path / f"{task}-dense").eval()
    assert (_outputs(plain, tiny_inputs) - compacted).abs().max() < 1e-4


def test_a_uniform_width_folder_gets_no_loading_hint_and_plain_transformers_loads_it(tmp_path, caplog, tiny_inputs):
    """FFN-only pruning with uniform allocation: config.json states every layer's width, so plain from_pretrained
    builds it (the same logits as load_pruned) and save_pruned writes no "cannot build" hint, README or warning."""
    import hfprune

    model = tiny_model("bert", seed=0)
    config = PruningConfig(head_sparsity=0.0, ffn_sparsity=0.5, allocation="uniform", scoring="magnitude")
    hfprune.prune(model, config)
    with caplog.at_level(logging.WARNING, logger="hfprune"):
        save_pruned(model, tmp_path / "uniform", pruning_config=config)
    assert not any("export_dense" in r.getMessage() for r in caplog.records)
    assert LOADING_KEY not in json.loads((tmp_path / "uniform" / "config.json").read_text())
    assert not (tmp_path / "uniform" / "README.md").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "uniform").eval()
    assert plain.config.intermediate_size == 24
    with torch.no_grad():
        assert torch.equal(plain(**tiny_inputs).logits, load_pruned(tmp_path / "uniform")(**tiny_inputs).logits)
