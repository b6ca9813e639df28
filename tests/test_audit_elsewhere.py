"""`hfprune audit` of a model trained elsewhere: naming its member set (--members, --members-file, or
record_membership_split from the user's own run), a bounded loyalty pass (--n-loyalty), and the paired comparison
against --reference. Tiny random BERTs, SST-2, no attacks (--robustness none): about 20 s on one core."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import minilm_tokenizer, tiny_bert

from hfprune.audit.privacy.split import MembershipSplit
from hfprune.errors import ConfigError, DataError

FAST = ("--robustness", "none", "--n-resamples", "0", "--max-length", "16", "--threads", "1")


def _audit(*argv: str) -> int:
    from hfprune.cli import audit as audit_command

    parser = argparse.ArgumentParser(prog="hfprune")
    audit_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["audit", *argv])
    return args.handler(args)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """Another tiny classifier: tiny_bert with a re-drawn head, so its predictions differ from tiny_model_dir's."""
    model = tiny_bert()
    torch.manual_seed(1)
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    target = tmp_path_factory.mktemp("other") / "other-bert"
    model.save_pretrained(target)
    minilm_tokenizer().save_pretrained(target)
    return target


def test_recorded_split_round_trips(tmp_path):
    """record_membership_split from a user's own datasets: the file hfprune writes, read back equal."""
    import datasets

    import hfprune.audit

    train = datasets.Dataset.from_dict({"text": [f"train {i}" for i in range(10)], "label": [i % 2 for i in range(10)]})
    heldout = datasets.Dataset.from_dict({"text": [f"held {i}" for i in range(6)], "label": [1] * 6})
    split = hfprune.audit.record_membership_split(train, tmp_path, heldout, n=4, seed=3, max_length=32)

    loaded = MembershipSplit.load(tmp_path)
    assert loaded == split and loaded.fingerprint == split.fingerprint
    assert loaded.n_members == loaded.n_nonmembers == 4
    assert loaded.member_texts == [f"train {i}" for i in loaded.member_ids]
    assert loaded.member_labels == [i % 2 for i in loaded.member_ids]
    assert loaded.nonmember_texts == [f"held {i}" for i in loaded.nonmember_ids]
    expected = sorted(np.random.default_rng(3).permutation(10)[:4].tolist())
    assert loaded.member_ids == expected  # drawn by the seeded permutation the docstring names
    # all members by default, capped by the held-out size (as many non-members as members)
    assert hfprune.audit.record_membership_split(train, tmp_path, heldout).n_members == 6
    with pytest.raises(ConfigError, match=r"^n: 8 members but the held-out split custom heldout has only 6 rows"):
        hfprune.audit.record_membership_split(train, tmp_path, heldout, n=8)
    assert MembershipSplit.load(tmp_path).n_members == 6  # the refused call wrote nothing


def test_members_file_is_the_member_set_used(tiny_model_dir, tmp_path):
    rows = [{"text": f"a memorable film number {i}", "label": i % 2} for i in range(12)]
    members = tmp_path / "members.jsonl"
    members.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "audit"
    assert _audit(str(tiny_model_dir), "--data", "glue/sst2", "--members-file", str(members), *FAST,
                  "--out", str(out)) == 0

    used = MembershipSplit.load(out)
    assert used.member_texts == [row["text"] for row in rows]
    assert used.member_labels == [row["label"] for row in rows]
    assert used.n_nonmembers == 12 and used.nonmember_split == "validation"
    from hfprune.data import load_dataset

    validation = load_dataset("glue/sst2", "validation")
    assert used.nonmember_texts == [validation[i]["sentence"] for i in used.nonmember_ids]
    audit = json.loads((out / "audit.json").read_text())
    assert audit["privacy"]["gap"]["n_members"] == 12 and audit["privacy"]["gap"]["n_nonmembers"] == 12


def test_members_dataset_spec_and_the_paired_comparison(tiny_model_dir, other_model_dir, tmp_path):
    """--members glue/sst2:train:20 and --reference: both models scored on the same 7 loyalty examples and the
    same members; the accuracy p-value is scipy's binomial test on the discordant counts measured here."""
    from scipy import stats

    from hfprune.audit.robustness import AuditTarget
    from hfprune.audit.robustness.sample import draw_sample
    from hfprune.data import load_dataset
    from hfprune.models import load_model_for_task, load_tokenizer

    out = tmp_path / "audit"
    assert _audit(str(tiny_model_dir), "--data", "glue/sst2", "--members", "glue/sst2:train:20", "--reference",
                  str(other_model_dir), "--n-loyalty", "7", *FAST, "--out", str(out)) == 0

    used = MembershipSplit.load(out)
    train = load_dataset("glue/sst2", "train")
    assert used.n_members == used.n_nonmembers == 20 and used.source_split == "train"
    assert used.member_ids == sorted(np.random.default_rng(0).permutation(len(train))[:20].tolist())
    assert used.member_texts == [train[i]["sentence"] for i in used.member_ids]

    audit = json.loads((out / "audit.json").read_text())
    reference = json.loads((out / "reference" / "audit.json").read_text())
    assert audit["loyalty"]["n_examples"] == 7  # the loyalty pass scored exactly --n-loyalty examples
    comparisons = {c["metric"]: c for c in audit["comparison"]}
    accuracy = comparisons["accuracy"]
    assert accuracy["n"] == 7

    sample = draw_sample(load_dataset("glue/sst2", "validation"), 7, 0)
    correct = []
    for folder in (other_model_dir, tiny_model_dir):  # dense (the reference) first, as the comparison orders them
        target = AuditTarget(folder.name, load_model_for_task(folder, "sequence-classification").eval(),
                             load_tokenizer(folder))
        probabilities = target.predictor(32, 16).predict_proba(sample.model_inputs(), progress=False)
        correct.append(np.argmax(probabilities, axis=1) == np.asarray(sample.labels))
    only_dense, only_pruned = int(np.sum(correct[0] & ~correct[1])), int(np.sum(~correct[0] & correct[1]))
    assert only_dense + only_pruned > 0  # the models disagree somewhere, so the test is not trivially p = 1
    assert accuracy["p_value"] == pytest.approx(stats.binomtest(only_pruned, only_dense + only_pruned, 0.5).pvalue)
    assert accuracy["test"] == f"exact McNemar ({only_dense} only dense, {only_pruned} only pruned)"

    loss = comparisons["MIA AUC (loss)"]
    assert loss["pruned"] == pytest.approx(audit["privacy"]["membership"][0]["auc"]["value"])
    assert loss["dense"] == pytest.approx(reference["privacy"]["membership"][0]["auc"]["value"])
    assert all(c["p_adjusted"] >= c["p_value"] and c["verdict"] for c in audit["comparison"])  # Holm applied
    assert "## Against the reference model" in (out / "audit.md").read_text()


def test_without_members_mia_is_skipped_unless_asked(tiny_model_dir, other_model_dir, tmp_path, caplog):
    out = tmp_path / "audit"
    with pytest.raises(ConfigError, match=r"^--privacy: .* has no membership_split\.json; .* pass --members "):
        _audit(str(tiny_model_dir), "--data", "glue/sst2", "--privacy", "mia", *FAST, "--out", str(out))
    with pytest.raises(ConfigError, match=r"^--robustness none and no member set .*nothing to audit"):
        _audit(str(tiny_model_dir), "--data", "glue/sst2", *FAST, "--out", str(out))
    assert not out.exists()

    # the default privacy with a reference: membership inference skipped with a notice, loyalty measured
    assert _audit(str(tiny_model_dir), "--data", "glue/sst2", "--reference", str(other_model_dir), "--n-examples",
                  "5", *FAST, "--out", str(out)) == 0
    notices = [r.getMessage() for r in caplog.records if "membership inference skipped" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0]
    audit = json.loads((out / "audit.json").read_text())
    assert audit["privacy"] is None and audit["loyalty"]["n_examples"] == 5  # --n-loyalty defaults to --n-examples
    assert not (out / "membership_split.json").exists()


@pytest.mark.parametrize(("flag", "content", "message"), [
    ("--members", None, r"^--members: expected DATASET\[:SPLIT\[:N\]\] .*got 'glue/sst2::5'$"),
    ("--members", None, r"^--members: N must be an integer >= 1, got '0'"),
    ("--members", None, r"^--members N: 5000 members but the held-out split glue/sst2 validation has only 872 rows"),
    ("--members-file", None, r"^--members-file: .*missing\.txt is not a file$"),
    ("--members-file", b"\n  \n", r"^--members-file: .*members\.txt is empty; expected one member text per line"),
    ("--members-file", b"caf\xe9 au lait\n", r"^--members-file: .*members\.txt is not UTF-8 text \(byte 3: "),
    ("--members-file", b"a film\nanother\n", r"^--members-file: .*members\.txt has texts without labels; a "
     r"classifier's"),
])
def test_bad_member_sets_fail_before_writing(tiny_model_dir, tmp_path, flag, content, message):
    if flag == "--members":
        value = {"DATASET": "glue/sst2::5", "integer": "glue/sst2:train:0"}.get(
            next((key for key in ("DATASET", "integer") if key in message), ""), "glue/sst2:train:5000")
    else:
        path = tmp_path / ("missing.txt" if content is None else "members.txt")
        if content is not None:
            path.write_bytes(content)
        value = str(path)
    out = tmp_path / "audit"
    with pytest.raises((ConfigError, DataError), match=message) as caught:
        _audit(str(tiny_model_dir), "--data", "glue/sst2", flag, value, *FAST, "--out", str(out))
    assert "\n" not in str(caught.value)
    assert not out.exists()


def test_bad_dataset_spec_names_the_flag(tiny_model_dir, tmp_path):
    out = tmp_path / "audit"
    with pytest.raises(DataError, match=r"^--members: .*no-such-dataset"):
        _audit(str(tiny_model_dir), "--data", "glue/sst2", "--members", str(tmp_path / "no-such-dataset"), *FAST,
               "--out", str(out))
    assert not out.exists()


def test_reference_attack_outcomes_are_compared_pairwise(tiny_model_dir, tmp_path, counted):
    """Constructed attack outcomes (the `counted` fixture: 1 of 4 flipped on the dense model, 4 of 4 at half the
    heads): the attack comparison is exact McNemar on the examples both classify correctly, p from scipy."""
    from scipy import stats

    import hfprune

    model = tiny_bert().eval()
    config = hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude")
    hfprune.prune(model, config)
    pruned = tmp_path / "pruned"
    hfprune.save_pruned(model, pruned, pruning_config=config, processing_class=minilm_tokenizer())
    out = tmp_path / "audit"
    assert _audit(str(pruned), "--data", "glue/sst2", "--reference", str(tiny_model_dir), "--privacy", "none",
                  "--n-examples", "5", "--robustness", "deepwordbug", *FAST[2:], "--out", str(out)) == 0
    assert counted["attack"] == 2  # the pruned model and the reference, one plan
    attack = next(c for c in json.loads((out / "audit.json").read_text())["comparison"]
                  if c["metric"].startswith("attack success"))
    assert attack["n"] == 4 and attack["test"] == "exact McNemar (0 only dense, 3 only pruned)"
    assert attack["p_value"] == pytest.approx(stats.binomtest(3, 3, 0.5).pvalue)
    assert (out / "reference" / "audit.json").is_file()


def test_plain_text_members_of_a_causal_lm(tmp_path):
    """A causal LM needs no labels: one member per line, non-members from jane_austen's validation split."""
    from conftest import tiny_model

    from hfprune.audit.privacy.lm import train_tokenizer
    from hfprune.data import load_dataset

    tokenizer = train_tokenizer(["It is a truth universally acknowledged."], vocab_size=258)
    model_dir = tmp_path / "tiny-lm"
    tiny_model("gpt2", "causal_lm", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id).save_pretrained(
        model_dir)
    tokenizer.save_pretrained(model_dir)
    lines = ["Emma Woodhouse, handsome, clever, and rich.", "", "She was the youngest of two daughters.",
             "Her mother had died too long ago."]
    members = tmp_path / "members.txt"
    members.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "audit"
    assert _audit(str(model_dir), "--data", "jane_austen", "--members-file", str(members), "--privacy", "mia",
                  *FAST, "--out", str(out)) == 0
    used = MembershipSplit.load(out)
    assert used.member_texts == [line for line in lines if line] and used.member_labels is None
    assert used.task == "causal-lm" and used.nonmember_split == "validation"
    validation = load_dataset("jane_austen", "validation")
    assert used.nonmember_texts == [validation[i]["text"] for i in used.nonmember_ids] and used.n_nonmembers == 3
