"""``training.seeds`` / ``--seeds`` in ``hfprune run`` and ``hfprune sweep`` on a tiny BERT and a few SST-2
sentences: per-seed stage folders on one member split, report numbers that are the means of the per-seed stages,
pooled p-values equal to scipy's on the same per-example data, resuming per (stage, seed), and one seed keeping
today's layout. The TextAttack part is replaced by constructed results (the ``counted`` fixture)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_payload
from scipy import stats

from hfprune.audit import seeds
from hfprune.errors import ConfigError
from hfprune.pipeline.results import STAGE_FILE
from hfprune.recipes.loading import load_recipe
from hfprune.recipes.schema import Recipe

torch.set_num_threads(1)


def _command(tmp_path: Path, payload: dict, *argv: str) -> argparse.Namespace:
    from hfprune.cli import run as run_command
    from hfprune.cli import sweep as sweep_command

    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(payload))
    parser = argparse.ArgumentParser(prog="hfprune")
    subparsers = parser.add_subparsers(dest="command")
    run_command.add_parser(subparsers)
    sweep_command.add_parser(subparsers)
    return parser.parse_args([argv[0], str(recipe_file), *argv[1:]])


def _stage(out: Path, name: str) -> dict:
    return json.loads((out / name / STAGE_FILE).read_text())


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob(STAGE_FILE)}


@pytest.fixture
def varied_accuracy(monkeypatch):
    """The tiny models predict one class on every sentence; their recorded per-example correctness is replaced by a
    made-up vector drawn from (seed, heads kept), so accuracy differs between seeds and models (as real ones do)."""
    from hfprune.pipeline import stages
    from hfprune.pruning.stats import sparsity_report

    evaluate = stages.evaluate_model

    def varied(model, tokenizer, recipe):
        quality = evaluate(model, tokenizer, recipe)
        rng = np.random.default_rng([recipe.training.seed, sparsity_report(model).heads_kept])
        quality.per_example = (rng.random(quality.n_examples) < 0.7).astype(float).tolist()
        quality.value = float(np.mean(quality.per_example))
        return quality

    monkeypatch.setattr(stages, "evaluate_model", varied)


def test_sweep_with_two_seeds_reports_means_pooled_tests_and_resumes(tiny_model_dir, tmp_path, counted, capsys,
                                                                     varied_accuracy):
    out = tmp_path / "run"
    payload = tiny_payload(tiny_model_dir, out)
    args = _command(tmp_path, payload, "sweep", "--sparsities", "0.5", "--seeds", "0", "1")
    assert args.handler(args) == 0
    assert counted == {"train_dense": 2, "prune_and_distill": 2, "attack": 4}
    assert set(_mtimes(out)) == {f"seed-{s}/{stage}" for s in (0, 1) for stage in ("dense", "levels/sparsity-0.50")}
    assert not (out / "dense").exists()

    # each seed is a one-seed run with its own seed and the same split seed: the same members, other weights
    for seed in (0, 1):
        training = json.loads((out / f"seed-{seed}" / "recipe.json").read_text())["training"]
        assert (training["seed"], training["split_seed"], training["seeds"]) == (seed, 0, None)
    split = [json.loads((out / f"seed-{s}/dense/model/membership_split.json").read_text()) for s in (0, 1)]
    assert split[0]["member_ids"] == split[1]["member_ids"] and split[0]["nonmember_ids"] == split[1]["nonmember_ids"]
    weights = [(out / f"seed-{s}/dense/model/model.safetensors").read_bytes() for s in (0, 1)]
    assert weights[0] != weights[1]

    dense = [_stage(out, f"seed-{s}/dense") for s in (0, 1)]
    pruned = [_stage(out, f"seed-{s}/levels/sparsity-0.50") for s in (0, 1)]
    assert dense[0]["quality"]["n_examples"] == dense[1]["quality"]["n_examples"] == 32

    report = json.loads((out / "sweep" / "report.json").read_text())
    assert report["seeds"] == [0, 1] and report["split_seed"] == 0
    metrics = report["metrics"]
    for stage, runs in (("dense", dense), ("sparsity-0.50", pruned)):
        accuracies = [run["quality"]["value"] for run in runs]
        cell = metrics[stage]["accuracy"]
        assert cell["mean"] == pytest.approx(np.mean(accuracies), abs=1e-12) and cell["n"] == 2
        assert (cell["low"], cell["high"]) == (min(accuracies), max(accuracies)) and min(accuracies) < max(accuracies)
        assert cell["sd"] == pytest.approx(np.std(accuracies, ddof=1), abs=1e-12)
        aucs = [next(m["auc"]["value"] for m in run["audit"]["privacy"]["membership"] if m["attack"] == "loss")
                for run in runs]
        assert metrics[stage]["MIA AUC (loss)"]["mean"] == pytest.approx(np.mean(aucs), abs=1e-12)
        assert metrics[stage]["MIA AUC (loss)"]["per_seed"] == {"0": aucs[0], "1": aucs[1]}
    assert metrics["sparsity-0.50"]["ASR deepwordbug"]["mean"] == 1.0  # constructed: 4 of 4 at half the heads

    changes = {c["metric"]: c for c in report["changes"]["sparsity-0.50"]}
    # accuracy: one t-test over the 32 examples of the correctness averaged over both seeds, as scipy computes it
    dense_correct = np.mean([run["quality"]["per_example"] for run in dense], axis=0)
    pruned_correct = np.mean([run["quality"]["per_example"] for run in pruned], axis=0)
    accuracy = changes["accuracy"]
    assert accuracy["difference"] == pytest.approx(pruned_correct.mean() - dense_correct.mean(), abs=1e-12)
    expected = stats.ttest_rel(pruned_correct, dense_correct)
    assert accuracy["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert (accuracy["low"], accuracy["high"]) == pytest.approx(tuple(expected.confidence_interval(0.95)), rel=1e-9)
    # attack success on the 4 examples both classify correctly, the same in both seeds: differences 0, 1, 1, 1
    attack = changes["attack success (deepwordbug, on examples both classify correctly)"]
    assert attack["p_value"] == pytest.approx(stats.ttest_1samp([0, 1, 1, 1], 0.0).pvalue, rel=1e-9)
    assert attack["n"] == 4 and attack["difference"] == 0.75
    # no test pools an AUC over seeds: one DeLong test per seed, Holm-adjusted with the rest
    assert {"MIA AUC (loss), seed 0", "MIA AUC (loss), seed 1"} <= set(changes)
    assert all(c["p_adjusted"] is not None and c["verdict"] for c in changes.values())
    # where the AUC change comes from: each side's loss (-score of the loss attack) averaged over both seeds
    def loss_attack(run):
        return next(m for m in run["audit"]["privacy"]["membership"] if m["attack"] == "loss")

    member = np.array(loss_attack(dense[0])["is_member"])
    dense_loss = -np.mean([loss_attack(run)["scores"] for run in dense], axis=0)
    pruned_loss = -np.mean([loss_attack(run)["scores"] for run in pruned], axis=0)
    for name, side in (("loss on members (nats)", member), ("loss on non-members (nats)", ~member)):
        expected = stats.ttest_rel(pruned_loss[side], dense_loss[side])
        assert changes[name]["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert changes[name]["pruned"] == pytest.approx(pruned_loss[side].mean(), rel=1e-9)

    markdown = (out / "sweep" / "report.md").read_text()
    assert markdown.split("\n## ")[1].startswith("What pruning changed")
    assert "both trained once for each of 2 seeds (0, 1)" in markdown
    assert "- loss on members (nats): " in markdown and "members' loss down means the model fits" in markdown
    assert f"| {_cell(metrics['dense']['accuracy'], 4)} |" in markdown
    assert "| 0.0% (all 2 seeds) |" in markdown  # the dense row's params removed: the same in every seed
    published = report["published"]["sparsity-0.50"]
    assert published["seed"] == sorted((run["quality"]["value"], s) for s, run in enumerate(pruned))[0][1]
    assert f"`{published['model_dir']}`" in markdown

    # every seed's pruned model carries the summary its card reports, naming itself and the published seed
    for seed in (0, 1):
        results = json.loads((out / f"seed-{seed}/levels/sparsity-0.50/model/hfprune_results.json").read_text())
        assert results["seeds"]["this_seed"] == seed and results["seeds"]["published"] == published
        assert results["seeds"]["pruned"]["accuracy"] == metrics["sparsity-0.50"]["accuracy"]
    from hfprune.hub.card import build_model_card

    card = str(build_model_card(out / "seed-1/levels/sparsity-0.50/model", "alice/tiny-seeds"))
    assert "## Across seeds" in card and "This model is seed 1 of 2 seeds (0, 1)" in card
    from hfprune.audit.compare import NO_CONTROL_NOTE

    assert NO_CONTROL_NOTE in card and NO_CONTROL_NOTE in markdown
    assert "- accuracy: **" in card and "t-test over 32 examples of the correctness averaged over seeds" in card

    printed = capsys.readouterr().out
    assert "4 of 4 (stage, seed) pairs computed" in printed
    before = _mtimes(out)
    assert args.handler(args) == 0  # again: every (stage, seed) reused, nothing trained
    assert counted == {"train_dense": 2, "prune_and_distill": 2, "attack": 4} and _mtimes(out) == before
    assert "0 of 4 (stage, seed) pairs computed, 4 reused" in capsys.readouterr().out

    more = _command(tmp_path, payload, "sweep", "--sparsities", "0.5", "--seeds", "0", "1", "2")
    assert more.handler(more) == 0  # a third seed costs one seed
    assert counted == {"train_dense": 3, "prune_and_distill": 3, "attack": 6}
    assert {k: v for k, v in _mtimes(out).items() if k in before} == before
    assert json.loads((out / "sweep" / "report.json").read_text())["metrics"]["dense"]["accuracy"]["n"] == 3


def _cell(spread: dict, digits: int) -> str:
    return (f"{spread['mean']:.{digits}f} (sd {spread['sd']:.{digits}f}, {spread['low']:.{digits}f} to "
            f"{spread['high']:.{digits}f}, {spread['n']} seeds)")


def test_one_seed_keeps_the_plain_layout_and_resumes_a_run_made_without_seeds(tiny_model_dir, tmp_path, counted):
    out = tmp_path / "run"
    payload = tiny_payload(tiny_model_dir, out)
    plain = _command(tmp_path, payload, "run")
    assert plain.handler(plain) == 0
    layout = _mtimes(out)
    assert set(layout) == {"dense", "pruned"} and (out / "report.md").is_file()
    one = _command(tmp_path, payload, "run", "--seeds", "0")
    assert one.handler(one) == 0  # seeds [0] is the plain run: the same fingerprints, nothing recomputed
    assert counted == {"train_dense": 1, "prune_and_distill": 1, "attack": 2} and _mtimes(out) == layout
    assert "seeds" not in json.loads((out / "pruned/model/hfprune_results.json").read_text())
    several = _command(tmp_path, payload, "run", "--seeds", "0", "1")
    with pytest.raises(ConfigError, match=r"^output\.dir: .* holds a one-seed run \(dense/\); a run with several "
                       r"seeds keeps its stages in seed-<s>/: choose another output\.dir$"):
        several.handler(several)
    assert not list(out.glob("seed-*")) and counted["train_dense"] == 1


def test_seeds_key_and_flag(tiny_model_dir, tmp_path, capsys):
    payload = tiny_payload(tiny_model_dir, tmp_path / "out")
    check = _command(tmp_path, payload, "sweep", "--sparsities", "0.5", "--seeds", "0", "1", "--check")
    assert check.handler(check) == 0 and not (tmp_path / "out").exists()  # every seed checked, nothing written
    assert "OK; 2 seeds x (dense + 1 level(s))" in capsys.readouterr().out
    payload["training"].update(seed=3, seeds=[0, 1])
    with pytest.raises(ConfigError, match=r"^training\.seeds: expected either training\.seed \(one run\) or "
                       r"training\.seeds \(one run per seed\), not both; remove one$"):
        Recipe.from_dict(payload)
    del payload["training"]["seeds"]
    args = _command(tmp_path, payload, "run", "--seeds", "2", "5")
    from hfprune.cli.run import recipe_overrides

    recipe = load_recipe(args.recipe, recipe_overrides(args))  # the flag replaces the file's seed
    assert recipe.training.run_seeds == [2, 5] and recipe.training.member_split_seed == 2
    for bad, message in (([1, 1], r"training\.seeds: expected distinct seeds"), ([], r"training\.seeds: expected at "
                         r"least one seed"), ([0, -1], r"training\.seeds\[1\]: expected an integer >= 0")):
        with pytest.raises(ConfigError, match=message):
            Recipe.from_dict({**payload, "training": {"seeds": bad}})
    with pytest.raises(ConfigError, match=r"^training\.seeds: run_sweep runs one seed"):
        from hfprune.pipeline.sweep import run_sweep

        run_sweep(recipe, [0.5])


def test_pooled_attack_averages_each_example_over_the_seeds_where_it_counts():
    dense = [["successful", "failed", "skipped", "failed"], ["failed", "failed", "failed", "skipped"]]
    pruned = [["successful", "successful", "failed", "successful"], ["successful", "skipped", "successful", "failed"]]
    result = seeds.pooled_attack(dense, pruned, recipe="pwws")
    # example 0: both seeds count, (0 + 1) / 2; example 1: seed 0 only, 1; example 2: seed 1 only, 1; example 3:
    # seed 0 only, 1
    differences = [0.5, 1.0, 1.0, 1.0]
    assert result.p_value == pytest.approx(stats.ttest_1samp(differences, 0.0).pvalue, rel=1e-12)
    assert (result.dense, result.pruned, result.n) == (pytest.approx(0.125), pytest.approx(1.0), 4)
    assert result.metric == "attack success (pwws, on examples both classify correctly)"
    assert seeds.pooled_attack([["skipped"]], [["failed"]], recipe="pwws") is None


def test_compare_seeds_pools_an_lm_loss_and_tests_exposure_once_per_seed():
    """A causal LM's records: the per-text loss averaged over seeds gets one Wilcoxon test; canary exposure has no
    pooled test, so one Wilcoxon test per seed, named by its seed."""
    from hfprune.audit.compare import PairedRecords
    from hfprune.audit.summaries import summarize_exposure

    rng = np.random.default_rng(3)
    dense_loss, pruned_loss = rng.normal(3.0, 0.3, (2, 40)), rng.normal(3.1, 0.3, (2, 40))
    dense_exposure, pruned_exposure = rng.uniform(2, 12, (2, 10)), rng.uniform(2, 12, (2, 10))

    def records(loss, exposure):
        result = summarize_exposure(exposure, model_name="m", sparsity=0.0, repetitions=10, space_size=10_000,
                                    method="exact", n_resamples=0)
        quality = {"metric": "perplexity", "value": float(np.exp(loss.mean())), "per_example": loss.tolist()}
        return PairedRecords(quality, exposure=[result])

    found = seeds.compare_seeds([records(dense_loss[i], dense_exposure[i]) for i in range(2)],
                                [records(pruned_loss[i], pruned_exposure[i]) for i in range(2)], [4, 7])
    loss = found["per-text loss (NLL, nats)"]
    assert len(loss) == 1 and loss[0].p_value == pytest.approx(
        stats.wilcoxon(pruned_loss.mean(axis=0) - dense_loss.mean(axis=0)).pvalue, rel=1e-12)
    exposure = found["canary exposure, bits (10 repetitions)"]
    assert [c.metric for c in exposure] == ["canary exposure, bits (10 repetitions), seed 4",
                                            "canary exposure, bits (10 repetitions), seed 7"]
    for i, comparison in enumerate(exposure):
        assert comparison.p_value == pytest.approx(stats.wilcoxon(pruned_exposure[i] - dense_exposure[i]).pvalue)
    # a Wilcoxon comparison's difference is the Hodges-Lehmann median shift, so is each seed's in the spread
    from hfprune.audit.signed_rank import signed_rank
    from hfprune.pipeline.seeds_report import _spread_text

    pooled_shift = signed_rank(pruned_loss.mean(axis=0) - dense_loss.mean(axis=0))
    assert (loss[0].difference, loss[0].low, loss[0].high) == (pooled_shift.estimate, pooled_shift.low,
                                                               pooled_shift.high)
    assert loss[0].test == "Wilcoxon signed-rank (exact) over 40 texts of the loss averaged over seeds (2 seeds)"
    spreads = seeds.difference_spreads([records(dense_loss[i], dense_exposure[i]) for i in range(2)],
                                       [records(pruned_loss[i], pruned_exposure[i]) for i in range(2)])
    shifts = [signed_rank(pruned_exposure[i] - dense_exposure[i]).estimate for i in range(2)]
    spread = spreads["canary exposure, bits (10 repetitions)"]
    assert (spread.low, spread.high) == (min(shifts), max(shifts))
    assert _spread_text(spread, "median shift").startswith(f"per-seed median shifts: mean {np.mean(shifts):+.3f}")


def test_compare_seeds_pools_the_members_and_the_non_members_loss_of_the_loss_attack():
    """The loss attack's scores (-loss) on the same members in every seed: each example's loss averaged over the
    seeds, then one paired t-test per side (scipy's p); its AUC stays one DeLong test per seed. A seed that scored
    other members leaves the sides untested rather than pairing unrelated examples."""
    from hfprune.audit.compare import MEMBER_LOSS_METRICS, PairedRecords
    from hfprune.audit.summaries import summarize_membership

    rng = np.random.default_rng(8)
    member = np.r_[np.ones(30), np.zeros(30)].astype(bool)
    dense_loss = rng.gamma(2.0, 0.2, (3, 60))
    noise = rng.normal(0, 0.01, (3, 60))
    noise[:, ~member] -= noise[:, ~member].mean()  # the non-members' mean loss does not move
    pruned_loss = dense_loss - 0.05 * member + noise

    def records(loss, is_member=member):
        return PairedRecords(membership=[summarize_membership(-loss, is_member, model_name="m", sparsity=0.0,
                                                              attack="loss", n_resamples=0)])

    found = seeds.compare_seeds([records(x) for x in dense_loss], [records(x) for x in pruned_loss], [0, 1, 2])
    for name, side in zip(MEMBER_LOSS_METRICS, (member, ~member), strict=True):
        (pooled,) = found[name]
        expected = stats.ttest_rel(pruned_loss.mean(axis=0)[side], dense_loss.mean(axis=0)[side])
        assert pooled.p_value == pytest.approx(expected.pvalue, rel=1e-12)
        assert pooled.test == "paired t-test over 30 examples of the loss averaged over seeds (3 seeds)"
    assert found[MEMBER_LOSS_METRICS[0]][0].high < 0 and found[MEMBER_LOSS_METRICS[1]][0].p_value > 0.05
    assert [c.metric for c in found["MIA AUC (loss)"]] == [f"MIA AUC (loss), seed {s}" for s in (0, 1, 2)]

    shuffled = records(pruned_loss[2], member[::-1])
    found = seeds.compare_seeds([records(x) for x in dense_loss[:2]] + [records(dense_loss[2], member[::-1])],
                                [records(x) for x in pruned_loss[:2]] + [shuffled], [0, 1, 2])
    assert not set(MEMBER_LOSS_METRICS) & set(found)


def test_a_sweep_level_that_prunes_nothing_is_the_control_every_level_is_also_compared_with(
        tiny_model_dir, tmp_path, counted, varied_accuracy):
    """``--sparsities 0,0.5``: the sparsity-0 level trains like the 0.5 level (same epochs, distillation) but prunes
    nothing, so the reports also test 0.5 against it — what pruning itself did, apart from the extra training —
    with the same pooled tests (scipy's p on the seed-averaged per-example data), named "control" in the lines; the
    one-seed report does the same with its own tests."""
    from hfprune.audit.compare import (
        CONTROL_NAMES,
        CONTROL_NOTE,
        NO_CONTROL_NOTE,
        Comparison,
        PairedRecords,
        compare_models,
    )
    from hfprune.hub.card import build_model_card
    from hfprune.pipeline.report import RunReport
    from hfprune.pipeline.results import StageResult

    out = tmp_path / "run"
    args = _command(tmp_path, tiny_payload(tiny_model_dir, out), "sweep", "--sparsities", "0,0.5", "--seeds", "0",
                    "1")
    assert args.handler(args) == 0
    report = json.loads((out / "sweep" / "report.json").read_text())
    group = "sparsity-0.50 against sparsity-0.00 (pruning itself: the same training, nothing pruned)"
    assert set(report["changes"]) == {"sparsity-0.00", "sparsity-0.50", group}
    control = [_stage(out, f"seed-{s}/levels/sparsity-0.00") for s in (0, 1)]
    pruned = [_stage(out, f"seed-{s}/levels/sparsity-0.50") for s in (0, 1)]
    assert all(run["sparsity"]["param_sparsity"] <= 0 for run in control)
    accuracy = next(c for c in report["changes"][group] if c["metric"] == "accuracy")
    reference = np.mean([run["quality"]["per_example"] for run in control], axis=0)
    candidate = np.mean([run["quality"]["per_example"] for run in pruned], axis=0)
    assert accuracy["p_value"] == pytest.approx(stats.ttest_rel(candidate, reference).pvalue, rel=1e-9)
    assert (accuracy["dense"], accuracy["pruned"]) == pytest.approx((reference.mean(), candidate.mean()))
    every = [c for found in report["changes"].values() for c in found]
    assert all(c["p_adjusted"] is not None for c in every)  # one Holm family with the dense comparisons
    markdown = (out / "sweep" / "report.md").read_text()
    assert f"**{group}**" in markdown and CONTROL_NOTE in markdown
    section = markdown.split(f"**{group}**")[1].split("\n\n")[1]
    assert section.startswith("- ") and "; control " in section and ", pruned " in section and "; dense " not in section

    # the one-seed report of seed 0: the same groups, tested on that seed alone
    stages = [StageResult.load(out / "seed-0" / name) for name in ("dense", "levels/sparsity-0.00",
                                                                   "levels/sparsity-0.50")]
    one = RunReport(load_recipe(tmp_path / "recipe.yaml"), stages[0], stages[1:])
    assert one.control is stages[1]
    found = one.changes()[group]
    expected = compare_models(PairedRecords.of(stages[1].quality, stages[1].model_audit),
                              PairedRecords.of(stages[2].quality, stages[2].model_audit))
    assert [(c.metric, c.p_value) for c in found] == [(c.metric, c.p_value) for c in expected]
    assert "; control " in one.changes_markdown() and CONTROL_NOTE in one.changes_markdown()
    without = RunReport(one.recipe, stages[0], stages[2:])
    assert without.control is None and NO_CONTROL_NOTE in without.changes_markdown()
    assert NO_CONTROL_NOTE not in one.changes_markdown()

    # the 0.5 model's card carries the pooled tests against the control, as the report decided them
    results = json.loads((out / "seed-0/levels/sparsity-0.50/model/hfprune_results.json").read_text())
    assert results["seeds"]["control_changes"] == report["changes"][group]
    card = str(build_model_card(out / "seed-0/levels/sparsity-0.50/model", "alice/tiny-control"))
    section = card.split("**Against the control (pruning itself: the same training, nothing pruned)**")[1]
    assert CONTROL_NOTE in card and f"- {Comparison.from_dict(accuracy).line(names=CONTROL_NAMES)}" in section
    assert NO_CONTROL_NOTE not in card


def test_run_with_control_trains_the_same_settings_with_nothing_removed_and_tests_pruned_against_it(
        tiny_model_dir, tmp_path, counted, varied_accuracy, capsys):
    """``hfprune run --control`` (audits.control): control/ is trained with the recipe's pruning settings, every
    sparsity 0 (the same scorer, schedule, epochs and distillation), and the report tests pruned/ against it with
    compare_models' own numbers, in one Holm family with the dense comparisons. A sweep with the control gains its
    sparsity-0 level; a families sweep refuses the setting."""
    from hfprune.audit.compare import (
        CONTROL_GROUP,
        CONTROL_NAMES,
        CONTROL_NOTE,
        NO_CONTROL_NOTE,
        PairedRecords,
        compare_models,
        decide_groups,
    )
    from hfprune.hub.card import build_model_card
    from hfprune.pipeline.report import RunReport
    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.sweep import plan_levels

    out = tmp_path / "run"
    payload = tiny_payload(tiny_model_dir, out, head_sparsity=0.5, ffn_sparsity=0.5)
    first = _command(tmp_path, payload, "run")
    assert first.handler(first) == 0 and counted["prune_and_distill"] == 1
    assert NO_CONTROL_NOTE in (out / "report.md").read_text()
    assert NO_CONTROL_NOTE in str(build_model_card(out / "pruned/model", "alice/tiny-no-control"))
    check = _command(tmp_path, payload, "run", "--control", "--check")
    assert check.handler(check) == 0 and "(dense/, control/, pruned/, report.md)" in capsys.readouterr().out
    before = _mtimes(out)
    args = _command(tmp_path, payload, "run", "--control")
    assert args.handler(args) == 0  # added to a finished run: the control alone is trained
    assert {name: t for name, t in _mtimes(out).items() if name != "control"} == before
    recipe = load_recipe(tmp_path / "recipe.yaml", {"audits.control": True})
    control, pruned = _stage(out, "control"), _stage(out, "pruned")
    assert control["pruning"] == recipe.pruning.as_control().to_dict()
    assert control["pruning"] == {**pruned["pruning"], "head_sparsity": 0.0, "ffn_sparsity": 0.0}
    assert control["sparsity"]["param_sparsity"] <= 0 < pruned["sparsity"]["param_sparsity"]
    assert counted["prune_and_distill"] == 2 and counted["train_dense"] == 1
    report = json.loads((out / "report.json").read_text())
    group = "pruned against control (pruning itself: the same training, nothing pruned)"
    assert set(report["changes"]) == {"control", "pruned", group}
    stages = {name: StageResult.load(out / name) for name in ("control", "pruned")}
    expected = compare_models(*(PairedRecords.of(s.quality, s.model_audit) for s in stages.values()))
    assert [c["metric"] for c in report["changes"][group]] == [c.metric for c in expected]
    assert [c["p_value"] for c in report["changes"][group]] == pytest.approx([c.p_value for c in expected])
    assert all(c["p_adjusted"] is not None for found in report["changes"].values() for c in found)
    assert RunReport(recipe, StageResult.load(out / "dense"), list(stages.values())).control.name == "control"

    # the pruned model's card tests it against the control too (the control's records are in its results file)
    results = json.loads((out / "pruned/model/hfprune_results.json").read_text())
    assert results["control"]["quality"] == control["quality"] and results["control"]["name"] == "control"
    assert "control" not in json.loads((out / "control/model/hfprune_results.json").read_text())
    card = str(build_model_card(out / "pruned/model", "alice/tiny-control"))
    dense_records = PairedRecords.of(_stage(out, "dense")["quality"], StageResult.load(out / "dense").model_audit)
    decided = decide_groups({"dense": compare_models(dense_records, PairedRecords.of(
        stages["pruned"].quality, stages["pruned"].model_audit)), "control": expected})
    section = card.split(f"**this model against control {CONTROL_GROUP}**")[1]
    assert CONTROL_NOTE in card and NO_CONTROL_NOTE not in card
    assert all(f"- {c.line(names=CONTROL_NAMES)}" in section for c in decided["control"])

    levels, _ = plan_levels(recipe, [0.5])
    assert [(level.value, level.pruning.prunes_nothing) for level in levels] == [(0.0, True), (0.5, False)]
    with pytest.raises(ConfigError, match="^audits.control: a families sweep has no control level"):
        plan_levels(recipe, families=["structured"], param_sparsities=[0.5])
