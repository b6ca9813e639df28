"""``hfprune audit MODEL_DIR --shadows dense|target --n-shadows K``: shadows for the reference and LiRA attacks of a
saved model of an hfprune run, retrained from what the run recorded (recipe.json, hfprune_results.json). Tiny
random BERT, 32 SST-2 members, real training (a run without shadows, then the audits); TextAttack off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_payload
from sklearn.metrics import roc_auc_score
from test_audit_elsewhere import FAST, _audit

from hfprune.errors import ConfigError
from hfprune.recipes.schema import Recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """An hfprune run (dense + one pruned level, half the heads and FFN neurons) that trained no shadows."""
    from hfprune.pipeline.runner import run_recipe

    out = tmp_path_factory.mktemp("run") / "run"
    payload = tiny_payload(tiny_model_dir, out, head_sparsity=0.5, ffn_sparsity=0.5)
    payload["audits"] = {"robustness": {"enabled": False}, "latency_rounds": 0,
                         "privacy": {"n_nonmembers": 32, "n_resamples": 0, "attacks": ["loss"]}}
    run_recipe(Recipe.from_dict(payload))
    return out


def _stats(directory: Path, split):
    from hfprune.audit.privacy.audit import PrivacyAuditConfig, model_stats
    from hfprune.audit.privacy.runs import load_run

    run = load_run(directory)
    return model_stats(run.model, run.tokenizer, split, PrivacyAuditConfig(max_length=16))


def _membership(out: Path) -> dict[str, dict]:
    audit = json.loads((out / "audit.json").read_text())
    return {r["attack"]: r for r in audit["privacy"]["membership"]}, audit["privacy"]["shadows"]


def test_target_shadows_of_a_pruned_model_are_pruned_like_it_and_give_the_attack_scores(run_dir, tmp_path):
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pipeline.shadows import SHADOW_FILE
    from hfprune.pruning.serialization import load_pruned
    from hfprune.pruning.stats import sparsity_report

    out = tmp_path / "audit"
    assert _audit(str(run_dir / "pruned" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "target",
                  "--n-shadows", "2", "--reference", str(run_dir / "dense" / "model"), "--n-loyalty", "8",
                  "--out", str(out), *FAST) == 0
    results, shadows = _membership(out)
    assert shadows == {"n": 2, "trained_as": "target"}
    assert list(results) == ["loss", "confidence", "entropy", "reference", "lira"]
    # the run's dense model as --reference: audited against the dense shadows, and both shadow attacks compared
    reference, reference_shadows = _membership(out / "reference")
    assert reference_shadows == {"n": 2, "trained_as": "dense"} and list(reference) == list(results)
    compared = [c["metric"] for c in json.loads((out / "audit.json").read_text())["comparison"]]
    assert {"MIA AUC (reference)", "MIA AUC (lira)"} <= set(compared)

    split = MembershipSplit.load(out)
    level = sparsity_report(load_pruned(run_dir / "pruned" / "model"))
    audited = {*split.member_ids, *split.nonmember_ids}
    for i in range(2):
        shadow = out / "shadows" / "target" / f"shadow-{i}"
        report = sparsity_report(load_pruned(shadow))
        assert (report.heads_kept, report.neurons_kept, report.params) == (level.heads_kept, level.neurons_kept,
                                                                            level.params)
        record = json.loads((shadow / SHADOW_FILE).read_text())
        assert record["dense_shadow"] == f"dense/shadow-{i}" and record["pruning"]["head_sparsity"] == 0.5
        assert not set(MembershipSplit.load(out / "shadows" / "dense" / f"shadow-{i}").member_ids) & audited

    # the scores and AUCs, recomputed from the saved models: reference = shadow-0 loss - target loss; LiRA = the
    # target's logit confidence against one Gaussian per example over the shadows (pooled sigma)
    target = _stats(run_dir / "pruned" / "model", split)
    shadow_stats = [_stats(out / "shadows" / "target" / f"shadow-{i}", split) for i in range(2)]
    outs = np.stack([s.lira for s in shadow_stats])
    sigma = np.sqrt(np.sum((outs - outs.mean(axis=0)) ** 2) / (outs.size - outs.shape[1]))
    expected = {"reference": shadow_stats[0].loss - target.loss, "lira": (target.lira - outs.mean(axis=0)) / sigma}
    is_member = np.r_[np.ones(split.n_members), np.zeros(split.n_nonmembers)]
    for attack, scores in expected.items():
        assert np.allclose(results[attack]["scores"], scores, rtol=1e-5, atol=1e-6)
        assert results[attack]["is_member"] == is_member.astype(bool).tolist()
        assert results[attack]["auc"]["value"] == pytest.approx(roc_auc_score(is_member, scores), abs=1e-9)


def test_dense_shadows_of_the_dense_model_with_one_shadow_run_the_reference_attack_only(run_dir, tmp_path):
    from hfprune.audit.privacy.split import MembershipSplit

    out = tmp_path / "audit"
    assert _audit(str(run_dir / "dense" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "dense",
                  "--n-shadows", "1", "--out", str(out), *FAST) == 0
    results, shadows = _membership(out)
    assert shadows == {"n": 1, "trained_as": "dense"} and "lira" not in results
    assert not (out / "shadows" / "target").exists()
    split = MembershipSplit.load(out)
    scores = _stats(out / "shadows" / "dense" / "shadow-0", split).loss - _stats(run_dir / "dense" / "model",
                                                                                  split).loss
    is_member = np.r_[np.ones(split.n_members), np.zeros(split.n_nonmembers)]
    assert results["reference"]["auc"]["value"] == pytest.approx(roc_auc_score(is_member, scores), abs=1e-6)


def test_bad_shadow_options_are_one_line_errors_before_anything_is_written(run_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "audit"
    pruned = str(run_dir / "pruned" / "model")
    cases = [
        ((pruned, "--shadows", "pruned"), r"--shadows: expected one of \['dense', 'target'\], got 'pruned'"),
        ((pruned, "--shadows", "target", "--n-shadows", "0"), "--n-shadows: expected an integer >= 1, got 0"),
        ((pruned, "--n-shadows", "2"), "--n-shadows: only used with --shadows"),
        ((str(tiny_model_dir), "--shadows", "dense"), "--shadows: .* is not the model folder of an hfprune run"),
        ((pruned, "--shadows", "target", "--privacy", "none", "--robustness", "deepwordbug"),
         "--shadows: shadow models serve membership inference"),
        ((pruned, "--shadows", "dense", "--members", "glue/sst2:train:10"), "--shadows: .*not with --members"),
    ]
    for argv, message in cases:
        with pytest.raises(ConfigError, match=message) as caught:
            _audit(argv[0], "--data", "glue/sst2", "--out", str(out), *FAST, *argv[1:])  # the case's flags last
        assert "\n" not in str(caught.value)
        assert not out.exists()

    # a pruned model copied without the hfprune_results.json that records its level's pruning, at a families
    # sweep's depth (RUN/levels/LEVEL/model): the run's recipe is found two folders above the stage
    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "pruned" / "model", copy / "levels" / "combined-0.50" / "model",
                    ignore=shutil.ignore_patterns("hfprune_results.json"))
    shutil.copy(run_dir / "recipe.json", copy / "recipe.json")
    with pytest.raises(ConfigError, match="--shadows: .*combined-0.50/model/hfprune_results.json is missing"):
        _audit(str(copy / "levels" / "combined-0.50" / "model"), "--data", "glue/sst2", "--shadows", "target",
               "--out", str(out), *FAST)
    assert not out.exists()


@pytest.fixture(scope="module")
def run_with_shadows(tiny_model_dir, tmp_path_factory) -> Path:
    """An hfprune run that trained two target shadows itself (dense/shadows and pruned/shadows)."""
    from test_privacy_shadows import _payload

    from hfprune.pipeline.runner import run_recipe

    out = tmp_path_factory.mktemp("shadowed") / "run"
    run_recipe(Recipe.from_dict(_payload(tiny_model_dir, out, "target")))
    return out


def _scores(out: Path, attack: str) -> np.ndarray:
    return np.array(_membership(out)[0][attack]["scores"])


def test_shadows_the_run_trained_the_same_way_are_reused_and_only_the_missing_ones_trained(
        run_with_shadows, tmp_path):
    from hfprune.audit.privacy.split import MembershipSplit

    run = run_with_shadows
    out = tmp_path / "audit"
    assert _audit(str(run / "pruned" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "target",
                  "--n-shadows", "3", "--reference", str(run / "dense" / "model"), "--out", str(out), *FAST) == 0
    # shadows 0 and 1 are the run's (dense and target); only shadow 2 was trained, into the audit's folder
    for kind in ("dense", "target"):
        assert sorted(p.name for p in (out / "shadows" / kind).iterdir() if not p.name.startswith(".")) == \
            ["shadow-2"]
    assert _membership(out)[1] == {"n": 3, "trained_as": "target"}
    # the reference attack scores with shadow 0: the run's own audit of the level, number for number
    assert np.allclose(_scores(out, "reference"), _scores(run / "pruned" / "audit", "reference"), atol=1e-6)
    assert np.allclose(_scores(out / "reference", "reference"), _scores(run / "dense" / "audit", "reference"),
                       atol=1e-6)
    # LiRA over the two reused shadows and the new one
    split = MembershipSplit.load(out)
    shadows = [run / "pruned" / "shadows" / "shadow-0", run / "pruned" / "shadows" / "shadow-1",
               out / "shadows" / "target" / "shadow-2"]
    outs = np.stack([_stats(s, split).lira for s in shadows])
    sigma = np.sqrt(np.sum((outs - outs.mean(axis=0)) ** 2) / (outs.size - outs.shape[1]))
    expected = (_stats(run / "pruned" / "model", split).lira - outs.mean(axis=0)) / sigma
    assert np.allclose(_scores(out, "lira"), expected, rtol=1e-5, atol=1e-6)

    # the dense model with one dense shadow: nothing to train at all
    dense_out = tmp_path / "dense-audit"
    assert _audit(str(run / "dense" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "dense",
                  "--n-shadows", "1", "--out", str(dense_out), *FAST) == 0
    assert not any((dense_out / "shadows").glob("*/shadow-*"))
    assert np.allclose(_scores(dense_out, "reference"), _scores(run / "dense" / "audit", "reference"), atol=1e-6)


def test_a_run_shadow_trained_another_way_is_trained_again(run_with_shadows, tmp_path):
    from hfprune.pipeline.shadows import SHADOW_FILE

    # a copy of the run whose target shadow 0 records other pruning settings: its dense shadow is still the
    # run's, the target one is retrained (and so is one of a level the run never finished)
    copy = tmp_path / "copy"
    shutil.copytree(run_with_shadows, copy)
    record_path = copy / "pruned" / "shadows" / "shadow-0" / SHADOW_FILE
    record = json.loads(record_path.read_text())
    record["pruning"]["head_sparsity"] = 0.25
    record_path.write_text(json.dumps(record))
    out = tmp_path / "audit"
    assert _audit(str(copy / "pruned" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "target",
                  "--n-shadows", "1", "--out", str(out), *FAST) == 0
    assert not (out / "shadows" / "dense" / "shadow-0").exists()
    assert (out / "shadows" / "target" / "shadow-0" / SHADOW_FILE).is_file()
    trained = json.loads((out / "shadows" / "target" / "shadow-0" / SHADOW_FILE).read_text())
    assert trained["pruning"]["head_sparsity"] == 0.5
    assert trained["dense_shadow"] == str((copy / "dense" / "shadows" / "shadow-0").resolve())  # the run's, reused

    (copy / "pruned" / "stage.json").unlink()  # no done-marker: the stage may be half-built, nothing is reused
    again = tmp_path / "again"
    record["pruning"]["head_sparsity"] = 0.5
    record_path.write_text(json.dumps(record))
    assert _audit(str(copy / "pruned" / "model"), "--data", "glue/sst2", "--privacy", "mia", "--shadows", "target",
                  "--n-shadows", "1", "--out", str(again), *FAST) == 0
    assert (again / "shadows" / "target" / "shadow-0" / SHADOW_FILE).is_file()
