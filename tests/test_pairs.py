"""Sentence-pair datasets (RTE-style ``premise``/``hypothesis``, ``sentence1``/``sentence2``...): which columns make
an example, the tokenizer's own pair encoding, and ``hfprune run`` / ``audit`` / ``prune`` on a small local pair
folder with a tiny random BERT: the pair is what trains, what is evaluated, what TextAttack perturbs and what
membership inference scores; a layout nothing can train on is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import minilm_tokenizer, tiny_payload

from hfprune.audit.privacy.split import MembershipSplit
from hfprune.data import load_dataset
from hfprune.data.columns import check_layout, encode, examples, text_columns
from hfprune.errors import ConfigError, DataError, HfpruneError
from hfprune.recipes.schema import Recipe

torch.set_num_threads(1)

WORDS = "the cat dog sat ran on a mat in park big small red blue".split()


def _dataset(columns: dict[str, list]):
    import datasets

    return datasets.Dataset.from_dict(columns)


def write_pair_folder(root: Path, n_train: int = 24, n_validation: int = 12) -> Path:
    """JSON lines with ``hypothesis`` written before ``premise`` (the encoding order must not follow the file)."""
    rng = random.Random(0)
    root.mkdir(parents=True)
    for split, n in (("train", n_train), ("validation", n_validation)):
        rows = [{"hypothesis": " ".join(rng.choices(WORDS, k=4)), "premise": " ".join(rng.choices(WORDS, k=7)),
                 "label": i % 2} for i in range(n)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.mark.parametrize(("columns", "expected"), [
    (["sentence"], ("sentence",)),
    (["hypothesis", "premise"], ("premise", "hypothesis")),
    (["question2", "question1"], ("question1", "question2")),
    (["sentence", "question"], ("question", "sentence")),
    (["title", "body"], ("title", "body")),  # two unknown columns: a pair in dataset order, as before
    (["title", "text", "author"], ("text",)),  # a known text column among several
])
def test_text_columns_of_each_layout(columns, expected):
    data = _dataset({**{name: ["a", "b"] for name in columns}, "label": [0, 1]})
    assert text_columns(data) == expected


def test_unsupported_layouts_are_one_line_errors():
    with pytest.raises(DataError, match=r"expected a 'text' or 'sentence' column, or a pair such as "
                                        r"sentence1/sentence2.*found text columns \['a', 'b', 'c'\]$"):
        text_columns(_dataset({"a": ["x"], "b": ["y"], "c": ["z"], "label": [0]}))
    with pytest.raises(DataError, match=r"^data\.dataset: rte split 'train': .*expected one text column .*sentence "
                                        r"pairs need a classifier"):
        check_layout("rte", {"train": _dataset({"sentence1": ["x"], "sentence2": ["y"]})}, classifier=False)
    with pytest.raises(DataError, match=r"column 'label' holds float.*expected integer class ids"):
        check_layout("stsb", {"train": _dataset({"sentence1": ["x"], "sentence2": ["y"], "label": [0.5]})})
    with pytest.raises(DataError, match=r"^data\.dataset: rte split 'test' has no labelled row"):
        check_layout("rte", {"train": _dataset({"sentence1": ["x"], "sentence2": ["y"], "label": [0]}),
                             "test": _dataset({"sentence1": ["x"], "sentence2": ["y"], "label": [-1]})})


def test_pair_encoding_is_the_tokenizers_own_and_scores_the_pair(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    from hfprune.audit.privacy.scores import classifier_logits
    from hfprune.training import tokenize_for_classification

    tokenizer = minilm_tokenizer()
    pairs = [("A man plays a guitar on stage.", "Someone makes music."), ("It rained all day.", "It was dry.")]
    encoded = encode(tokenizer, pairs, truncation=True, max_length=12)
    for i, (first, second) in enumerate(pairs):
        own = tokenizer(first, second, truncation=True, max_length=12)
        assert encoded["input_ids"][i] == own["input_ids"] and encoded["token_type_ids"][i] == own["token_type_ids"]
    assert 1 in encoded["token_type_ids"][0]  # the second sentence is a segment of its own
    data = _dataset({"hypothesis": [b for _, b in pairs], "premise": [a for a, _ in pairs], "label": [0, 1]})
    assert examples(data) == pairs
    assert tokenize_for_classification(data, tokenizer, max_length=12)["input_ids"] == encoded["input_ids"]
    # membership inference scores the classifier on the pair: the same logits as one forward pass per pair
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    batched = classifier_logits(model, tokenizer, pairs, batch_size=2, max_length=12)
    with torch.no_grad():
        single = [model(**tokenizer(a, b, truncation=True, max_length=12, return_tensors="pt")).logits[0].double()
                  for a, b in pairs]
    np.testing.assert_allclose(batched, torch.stack(single).numpy(), rtol=0, atol=1e-6)


def test_membership_split_of_pairs_round_trips_and_single_texts_keep_their_fingerprint(tmp_path):
    pairs = MembershipSplit("d", "train", 0, [0, 1], [2], [("a", "b"), ("c", "d")], [("e", "f")], [0, 1], [1])
    pairs.save(tmp_path)
    again = MembershipSplit.load(tmp_path)
    assert again.member_texts == [("a", "b"), ("c", "d")] and again.fingerprint == pairs.fingerprint
    texts = MembershipSplit("d", "train", 0, [0], [1], ["ab"], ["cd"], [0], [1])
    old = hashlib.sha256()  # the fingerprint single-text split files were written with before pairs existed
    for text, label in (("ab", 0), ("cd", 1)):
        old.update(text.encode("utf-8"))
        old.update(f"\x00{label}\x00".encode())
    assert texts.fingerprint == old.hexdigest()
    assert pairs.fingerprint != MembershipSplit("d", "train", 0, [0, 1], [2], ["a\x1fb", "c\x1fd"], ["e\x1ff"],
                                                [0, 1], [1]).fingerprint
    with pytest.raises(ConfigError, match="same kind of example"):
        MembershipSplit("d", "train", 0, [0], [1], [("a", "b")], ["c"], [0], [1])


def test_preflight_refuses_an_unsupported_layout_before_writing(tiny_model_dir, tmp_path):
    from hfprune.pipeline.runner import run_recipe

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"a": "x y", "b": "z", "c": "w", "label": i % 2})
                                                     + "\n" for i in range(40)))
    payload = tiny_payload(tiny_model_dir, tmp_path / "run")
    payload["data"] = {"dataset": str(data), "train_samples": 8, "max_length": 16}
    payload["audits"]["privacy"]["n_nonmembers"] = 8
    with pytest.raises(DataError) as caught:
        run_recipe(Recipe.from_dict(payload))
    assert str(caught.value).startswith(f"data.dataset: {data} split 'train': dataset columns ['a', 'b', 'c', "
                                        "'label']: expected a 'text' or 'sentence' column")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()
    from hfprune.training import FinetuneConfig, finetune_classifier

    with pytest.raises(DataError, match=rf"^dataset: {data} split 'train': dataset columns"):
        finetune_classifier(FinetuneConfig(model=str(tiny_model_dir), dataset=str(data),
                                           output_dir=str(tmp_path / "finetuned")))
    assert not (tmp_path / "finetuned").exists()
    from hfprune.pipeline.prune_classifier import PruneClassifierConfig, prune_classifier

    with pytest.raises(DataError, match=rf"^dataset: {data} split 'train': dataset columns"):
        prune_classifier(PruneClassifierConfig(teacher=str(tiny_model_dir), dataset=str(data),
                                               output_dir=str(tmp_path / "pruned")))
    assert not (tmp_path / "pruned").exists()


@pytest.mark.audit
def test_run_audit_and_prune_on_a_local_pair_dataset(tiny_model_dir, tmp_path, capsys):
    """Dense + one level with DeepWordBug on 2 pairs and MIA on the member pairs, then ``hfprune audit`` of the
    pruned level against the dense model and ``hfprune prune``: the numbers are recomputed here pair by pair."""
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForSequenceClassification

    import hfprune
    from hfprune.cli.main import main
    from hfprune.pipeline.sweep import run_sweep

    data = write_pair_folder(tmp_path / "data")
    payload = tiny_payload(tiny_model_dir, tmp_path / "run")
    payload["data"] = {"dataset": str(data), "train_samples": 12, "max_length": 24}
    payload["audits"]["robustness"].update(n_examples=2, query_budget=20)
    payload["audits"]["privacy"]["n_nonmembers"] = 12
    run = tmp_path / "run"
    run_sweep(Recipe.from_dict(payload), [0.5])

    train = load_dataset(str(data), "train")
    split = MembershipSplit.load(run / "dense" / "model")
    rows = examples(train)
    assert split.member_texts == [rows[i] for i in split.member_ids]  # (premise, hypothesis) pairs
    assert split.member_texts[0] == (train[split.member_ids[0]]["premise"], train[split.member_ids[0]]["hypothesis"])

    tokenizer = minilm_tokenizer()

    def pair_logits(model, pairs):
        with torch.no_grad():
            return torch.cat([model(**tokenizer(a, b, truncation=True, max_length=24, return_tensors="pt")).logits
                              for a, b in pairs]).double()

    dense = AutoModelForSequenceClassification.from_pretrained(run / "dense" / "model").eval()
    logits = pair_logits(dense, split.texts)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(split.labels), reduction="none").numpy()
    stage = json.loads((run / "dense" / "stage.json").read_text())
    (loss_attack,) = [m for m in stage["audit"]["privacy"]["membership"] if m["attack"] == "loss"]
    assert loss_attack["auc"]["value"] == pytest.approx(roc_auc_score(split.is_member, -loss), abs=1e-12)

    validation = load_dataset(str(data), "validation")
    level = json.loads((run / "levels/sparsity-0.50/stage.json").read_text())
    pruned = hfprune.load_pruned(run / "levels/sparsity-0.50/model").eval()
    pruned_pred = pair_logits(pruned, examples(validation)).argmax(1).numpy()
    assert level["quality"]["per_example"] == (pruned_pred == np.array(validation["label"])).astype(float).tolist()
    dense_pred = pair_logits(dense, examples(validation)).argmax(1).numpy()
    assert level["audit"]["loyalty"]["label_loyalty"]["value"] == pytest.approx(np.mean(dense_pred == pruned_pred))
    with (run / "levels/sparsity-0.50/audit/robustness/deepwordbug/attack_log.csv").open() as handle:
        import csv

        log = list(csv.DictReader(handle))
    assert len(log) == 2
    for row in log:  # TextAttack attacked the pair through its columns
        source = validation[int(row["index"])]
        assert (row["original_premise"], row["original_hypothesis"]) == (source["premise"], source["hypothesis"])

    out = tmp_path / "audit"
    assert main(["audit", str(run / "levels/sparsity-0.50/model"), "--data", str(data), "--robustness", "none",
                 "--privacy", "mia", "--reference", str(run / "dense" / "model"), "--n-resamples", "0",
                 "--max-length", "24", "--out", str(out)]) == 0
    audit = json.loads((out / "audit.json").read_text())
    assert audit["privacy"]["membership"][0]["auc"] == level["audit"]["privacy"]["membership"][0]["auc"]

    assert main(["prune", "--model", str(tiny_model_dir), "--dataset", str(data), "--train-samples", "12",
                 "--teacher-epochs", "1", "--prune-epochs", "1", "--max-length", "24", "--batch-size", "6",
                 "--scoring", "magnitude", "--no-distill", "--output-dir",
                 str(tmp_path / "prune")]) == 0
    report = json.loads((tmp_path / "prune" / "report.json").read_text())
    pruned = hfprune.load_pruned(tmp_path / "prune" / "pruned").eval()
    correct = pair_logits(pruned, examples(validation)).argmax(1).numpy() == np.array(validation["label"])
    assert report["pruned_accuracy"] == pytest.approx(correct.mean())
    capsys.readouterr()


def test_members_file_with_text_pairs(tmp_path):
    from hfprune.audit.privacy.members import read_members_file

    path = tmp_path / "members.jsonl"
    path.write_text('{"text": "a b", "text_pair": "c", "label": 1}\n{"text": "d", "text_pair": "e f", "label": 0}\n')
    assert read_members_file(path, "sequence-classification") == ([("a b", "c"), ("d", "e f")], [1, 0])
    path.write_text('{"text": "a b", "text_pair": "c", "label": 1}\n{"text": "d", "label": 0}\n')
    with pytest.raises(HfpruneError, match='"text_pair" on every line or on none'):
        read_members_file(path, "sequence-classification")


def test_members_named_by_dataset_and_recorded_from_a_trainer_run_are_pairs(tmp_path):
    """``--members DATASET:SPLIT:N`` and ``record_membership_split`` on a pair dataset record (premise, hypothesis)
    pairs: the member rows of train and the non-member rows of the held-out split, by their ids."""
    from hfprune.audit.privacy.members import MembersSpec, members_from_dataset, record_membership_split

    data = write_pair_folder(tmp_path / "data")
    train, held = (examples(load_dataset(str(data), split)) for split in ("train", "validation"))
    split = members_from_dataset(MembersSpec(str(data), "train", 4), "sequence-classification", seed=0)
    assert split.nonmember_split == "validation" and split.n_members == split.n_nonmembers == 4
    assert split.member_texts == [train[i] for i in split.member_ids]
    assert split.nonmember_texts == [held[i] for i in split.nonmember_ids]
    recorded = record_membership_split(load_dataset(str(data), "train"), tmp_path,
                                       load_dataset(str(data), "validation"), n=4, seed=0)
    assert MembershipSplit.load(tmp_path).member_texts == recorded.member_texts == split.member_texts
