"""``audits.privacy.shadows``: the reference and LiRA shadow models of a recipe's membership audit are trained
like the audited model (``target``: a pruned level's shadows are pruned the same way, distilling from their own
dense shadow) or dense only (``dense``: the library's ``train_disjoint_models`` behaviour). Tiny random BERT, 32
SST-2 members, real training; the TextAttack part is off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_payload

from hfprune.errors import ConfigError
from hfprune.recipes.schema import Recipe

torch.set_num_threads(1)


def _payload(model_dir: Path, out: Path, mode: str, n_shadows: int = 2) -> dict:
    payload = tiny_payload(model_dir, out, head_sparsity=0.5, ffn_sparsity=0.5)
    payload["audits"] = {"robustness": {"enabled": False}, "latency_rounds": 0,
                         "privacy": {"n_nonmembers": 32, "n_resamples": 0, "attacks": ["loss", "reference", "lira"],
                                     "n_shadows": n_shadows, "shadows": mode}}
    return payload


@pytest.fixture
def pruned_calls(monkeypatch):
    """Every prune_and_distill call: (seed, distillation on, the dense model's folder it starts from)."""
    from hfprune.pipeline import stages

    calls, original = [], stages.prune_and_distill

    def spy(recipe, pruning, dense, target, scratch):
        calls.append((recipe.training.seed, recipe.distillation.enabled, Path(dense.path).name))
        return original(recipe, pruning, dense, target, scratch)

    monkeypatch.setattr(stages, "prune_and_distill", spy)
    return calls


def _audit(stage: Path) -> dict:
    return json.loads((stage / "audit" / "audit.json").read_text())


def test_target_shadows_are_pruned_like_the_level_and_distilled_from_their_dense_shadow(
        tiny_model_dir, tmp_path, pruned_calls):
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pipeline.runner import run_recipe
    from hfprune.pipeline.shadows import SHADOW_FILE
    from hfprune.pruning.serialization import load_pruned
    from hfprune.pruning.stats import sparsity_report

    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(_payload(tiny_model_dir, out, "target")))

    # the level itself (seed 0, from the dense model), then shadow i (seed 1 + i, from its own dense shadow)
    assert pruned_calls == [(0, True, "model"), (1, True, "shadow-0"), (2, True, "shadow-1")]
    audited = MembershipSplit.load(out / "dense" / "model")
    ids = {*audited.member_ids, *audited.nonmember_ids}
    level = sparsity_report(load_pruned(out / "pruned" / "model"))
    for i in range(2):
        dense_shadow = out / "dense" / "shadows" / f"shadow-{i}"
        assert not set(MembershipSplit.load(dense_shadow).member_ids) & ids
        shadow = out / "pruned" / "shadows" / f"shadow-{i}"
        # the level's shapes: as many heads, FFN neurons and parameters kept
        report = sparsity_report(load_pruned(shadow))
        assert (report.heads_kept, report.neurons_kept, report.params) == (
            level.heads_kept, level.neurons_kept, level.params)
        assert (report.heads_kept, report.heads_total, report.neurons_kept, report.neurons_total) == (4, 8, 48, 96)
        record = json.loads((shadow / SHADOW_FILE).read_text())
        assert record["trained_as"] == "target" and record["dense_shadow"] == f"dense/shadows/shadow-{i}"
        assert record["distillation"]["enabled"] is True and record["pruning"]["head_sparsity"] == 0.5
        assert MembershipSplit.load(shadow).member_ids == MembershipSplit.load(dense_shadow).member_ids

    pruned = _audit(out / "pruned")["privacy"]
    assert pruned["shadows"] == {"n": 2, "trained_as": "target"}
    assert [r["attack"] for r in pruned["membership"]] == ["loss", "reference", "lira"]
    assert _audit(out / "dense")["privacy"]["shadows"] == {"n": 2, "trained_as": "target"}
    privacy_md = (out / "pruned" / "audit" / "privacy" / "privacy_report.md").read_text()
    assert "- pruned: 2 shadow model(s) (the first is the reference), trained with the audited model's own recipe" \
        in privacy_md
    report = (out / "report.md").read_text()
    assert "Reference and LiRA: 2 shadow model(s) trained on examples disjoint from the audited ones (shadows: " \
        "target)" in report
    assert "| stage | training s | evaluation s | audit s | shadows s |" in report

    # a rerun reuses the finished stages with their shadows; the mode is part of the fingerprint, so the same
    # folder with dense shadows is another run
    run_recipe(Recipe.from_dict(_payload(tiny_model_dir, out, "target")))
    assert len(pruned_calls) == 3
    with pytest.raises(ConfigError, match=r"changed: .*audits\.privacy\.shadows"):
        run_recipe(Recipe.from_dict(_payload(tiny_model_dir, out, "dense")))


def test_dense_shadows_are_shared_and_give_the_library_numbers(tiny_model_dir, tmp_path, pruned_calls):
    """``dense``: no shadow is pruned, and the level's reference and LiRA AUCs are exactly what the library's
    dense-shadow route (``reference_stats`` of the dense shadows, then ``audit_model``) gives on the saved model."""
    from hfprune.audit.privacy import PrivacyAuditConfig, audit_model, load_run, reference_stats
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pipeline.runner import run_recipe

    out = tmp_path / "run"
    payload = _payload(tiny_model_dir, out, "dense")
    payload["training"]["split_seed"] = 0  # fixed, as in a run of several seeds: each shadow still draws its own
    run_recipe(Recipe.from_dict(payload))
    assert pruned_calls == [(0, True, "model")]
    assert not (out / "pruned" / "shadows").exists()
    draws = [set(MembershipSplit.load(out / "dense" / "shadows" / f"shadow-{i}").member_ids) for i in range(2)]
    assert draws[0] != draws[1]

    pruned = _audit(out / "pruned")["privacy"]
    assert pruned["shadows"] == {"n": 2, "trained_as": "dense"}
    run = load_run(out / "pruned" / "model")
    config = PrivacyAuditConfig(attacks=["loss", "reference", "lira"], n_resamples=0, max_length=16,
                                extraction=False, canary_exposure=False)
    stats = reference_stats([out / "dense" / "shadows" / f"shadow-{i}" for i in range(2)], run.split, config)
    entry = audit_model(run.model, run.tokenizer, run.split, model_name="pruned", config=config,
                        sparsity=pruned["sparsity"], reference=stats[0], shadows=stats)
    expected = {r.attack: r.auc.value for r in entry.membership}
    got = {r["attack"]: r["auc"]["value"] for r in pruned["membership"]}
    assert got.keys() == expected.keys() and np.allclose(list(got.values()), list(expected.values()), atol=1e-12)


def test_shadow_settings_are_validated_and_fingerprinted(tmp_path):
    model = tmp_path / "m"

    def recipe(**privacy) -> Recipe:
        payload = _payload(model, tmp_path / "out", "target")
        payload["audits"]["privacy"] = {"attacks": ["loss"], **privacy}
        return Recipe.from_dict(payload)

    with pytest.raises(ConfigError, match=r"^audits\.privacy\.shadows: expected one of \['dense', 'target'\], "
                                          r"got 'teacher'$"):
        recipe(shadows="teacher", attacks=["lira"], n_shadows=2)
    with pytest.raises(ConfigError, match=r"^audits\.privacy\.attacks\[1\]: attack 'lira' needs "
                                          r"audits\.privacy\.n_shadows >= 2, got 1$"):
        recipe(attacks=["reference", "lira"], n_shadows=1)
    with pytest.raises(ConfigError, match=r"^audits\.privacy\.n_shadows: 2 shadow model\(s\) serve only"):
        recipe(n_shadows=2)
    with pytest.raises(ConfigError, match=r"^audits\.privacy\.n_shadows: expected an integer >= 0"):
        recipe(n_shadows=-1)
    payload = _payload(model, tmp_path / "out", "target")
    payload["model"]["teacher"] = str(model)
    with pytest.raises(ConfigError, match=r"^audits\.privacy\.n_shadows: shadows are trained the way the dense"):
        Recipe.from_dict(payload)

    with_shadows = {mode: recipe(shadows=mode, attacks=["lira"], n_shadows=2).fingerprint() for mode in
                    ("dense", "target")}
    assert with_shadows["dense"] != with_shadows["target"]
    # without shadows the keys change nothing: the fingerprint is the one recipes had before they existed
    without = recipe(shadows="dense")
    assert without.fingerprint() == recipe(shadows="target").fingerprint()
    assert "n_shadows" not in without.result_dict()["audits"]["privacy"]


def test_causal_lm_shadows_share_the_tokenizer_and_are_pruned_like_the_level(tmp_path, pruned_calls):
    """A GPT-2 trained here: its shadow reuses the target's tokenizer (the same tokens are scored) and, with
    ``target``, is pruned like the level."""
    from hfprune.pipeline.runner import run_recipe
    from hfprune.pruning.serialization import load_pruned
    from hfprune.pruning.stats import sparsity_report

    out = tmp_path / "lm"
    run_recipe(Recipe.from_dict({
        "name": "tiny-lm", "model": {"name": None, "task": "causal-lm",
                                     "scratch": {"n_layer": 1, "n_embd": 16, "n_head": 4, "vocab_size": 300}},
        "data": {"dataset": "jane_austen", "train_samples": 12, "eval_samples": 6, "max_length": 24},
        "training": {"dense_epochs": 1, "prune_epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "threads": 1},
        "pruning": {"scoring": "magnitude", "head_sparsity": 0.5, "ffn_sparsity": 0.5},
        "audits": {"robustness": {"enabled": False}, "latency_rounds": 0,
                   "privacy": {"n_nonmembers": 6, "n_resamples": 0, "attacks": ["loss", "reference"],
                               "n_shadows": 1, "canaries": {"repetitions": []}}},
        "output": {"dir": str(out)}}))
    assert pruned_calls == [(0, True, "model"), (1, True, "shadow-0")]
    tokenizer = (out / "dense/model/tokenizer.json").read_bytes()
    assert (out / "dense/shadows/shadow-0/tokenizer.json").read_bytes() == tokenizer
    shadow, level = (sparsity_report(load_pruned(out / path)) for path in ("pruned/shadows/shadow-0", "pruned/model"))
    assert (shadow.heads_kept, shadow.neurons_kept, shadow.params) == (level.heads_kept, level.neurons_kept,
                                                                       level.params)
    assert shadow.heads_kept == 2 and shadow.heads_total == 4
    privacy = _audit(out / "pruned")["privacy"]
    assert privacy["shadows"] == {"n": 1, "trained_as": "target"}
    assert [r["attack"] for r in privacy["membership"]] == ["loss", "reference"]


def test_shadows_need_as_many_examples_again_and_preflight_says_so(tiny_model_dir, tmp_path):
    """SST-2's 67,349 train rows hold 30,000 + 10,000 audited examples, not twice that: refused before writing."""
    from hfprune.pipeline.runner import RecipeRunner, single_level

    payload = _payload(tiny_model_dir, tmp_path / "out", "target")
    payload["data"]["train_samples"] = 30_000
    payload["audits"]["privacy"]["n_nonmembers"] = 10_000
    recipe = Recipe.from_dict(payload)
    with pytest.raises(ConfigError, match=r"^data\.train_samples: expected 2 x \(train_samples \+ audits\.privacy\."
                                          r"n_nonmembers\) <= 67349 \(rows of glue/sst2 train; shadow models draw "
                                          r"as many again\), got 30000 \+ 10000$"):
        RecipeRunner(recipe).preflight(single_level(recipe))
    assert not (tmp_path / "out").exists()
    payload["audits"]["privacy"].update(n_shadows=0, attacks=["loss"])
    RecipeRunner(Recipe.from_dict(payload)).preflight(single_level(recipe))  # without shadows they fit


def test_library_shadows_move_a_fixed_split_seed_too(tmp_path):
    """``train_disjoint_models`` with ``split_seed`` set (as runs of several seeds do): shadow i gets seed and split
    seed + 1 + i, so no two shadows share a member draw."""
    from types import SimpleNamespace

    from hfprune.audit.privacy import MemberFinetuneConfig, MembershipSplit, train_disjoint_models

    seen = []

    def train_fn(config, exclude):
        seen.append((config.seed, config.split_seed, Path(config.output_dir).name, exclude))
        return SimpleNamespace(output_dir=config.output_dir)

    split = MembershipSplit("d", "train", 0, [0], [1], ["a"], ["b"], [0], [1])
    config = MemberFinetuneConfig(seed=3, split_seed=7)
    dirs = train_disjoint_models(train_fn, config, split, k=2, output_root=tmp_path)
    assert seen == [(4, 8, "shadow-0", split), (5, 9, "shadow-1", split)]
    assert dirs == [str(tmp_path / "shadow-0"), str(tmp_path / "shadow-1")]


def test_shadows_are_refused_under_a_launch_of_several_processes(tiny_model_dir, tmp_path, monkeypatch):
    """Shadows train on the main process alone while the others wait, where a DDP Trainer would hang: refused in
    the preflight, before anything is written."""
    from hfprune.pipeline.runner import RecipeRunner, single_level

    recipe = Recipe.from_dict(_payload(tiny_model_dir, tmp_path / "out", "target"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=r"^audits\.privacy\.n_shadows: shadow models are trained by one process; "
                                          r"expected 0 under a launch of 2 processes \(or run with one process\)$"):
        RecipeRunner(recipe).preflight(single_level(recipe))
    assert not (tmp_path / "out").exists()
