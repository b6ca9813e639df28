"""``hfprune sweep --families ... --seeds``: a families sweep per seed on a tiny BERT and a few SST-2 sentences, one
report over the seeds (numbers recomputed from each seed's stages and efficiency records, the pooled p-value
against scipy), seeds run earlier as plain one-seed families sweeps resumed rather than retrained, and the folder
checks. Attacks are constructed (the ``counted`` fixture), accuracy varied per seed (``varied_accuracy``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import PNG_MAGIC, tiny_payload
from scipy import stats

from hfprune.errors import ConfigError
from hfprune.pipeline.results import STAGE_FILE
from hfprune.recipes.schema import Recipe
from tests.test_seeds_run import _cell, _command, _mtimes, _stage, varied_accuracy  # noqa: F401 (a fixture)

torch.set_num_threads(1)

P = 0.75  # whole heads and neurons of the tiny model: structured and weight both keep exactly 1/4 (test_families)
LEVELS = [f"levels/{family}-0.75" for family in ("structured", "weight")]
FAMILIES = ("--families", "structured,weight", "--param-sparsities", "0.75")


def _plain_seed(payload: dict, out, seed: int) -> Recipe:
    """The recipe of a plain one-seed families sweep of seed ``seed`` into ``out/seed-<s>`` (the lead's layout)."""
    plain = json.loads(json.dumps(payload))
    plain["training"].update(seed=seed, split_seed=0)
    plain["output"] = {"dir": str(out / f"seed-{seed}")}
    return Recipe.from_dict(plain)


@pytest.mark.usefixtures("varied_accuracy")
def test_families_over_two_seeds_resume_a_plain_seed_and_report_means_and_pooled_tests(
        tiny_model_dir, tmp_path, counted, capsys, monkeypatch):
    from hfprune.pipeline import efficiency
    from hfprune.pipeline.sweep import run_sweep

    monkeypatch.setattr(efficiency, "DEFAULT_ROUNDS", {1: 2})  # timings are read back, not judged: few rounds
    out = tmp_path / "run"
    payload = tiny_payload(tiny_model_dir, out, weight_method="magnitude")
    # seed 0 first, as a plain one-seed families sweep beside a log file: the run over seeds adopts the folder
    run_sweep(_plain_seed(payload, out, 0), families=["structured", "weight"], param_sparsities=[P])
    (out / "seed0.log").write_text("a log the run leaves alone\n")
    assert counted == {"train_dense": 1, "prune_and_distill": 2, "attack": 3}
    plain = _mtimes(out)
    efficiency_0 = {name: (out / "seed-0" / name / "efficiency.json").read_bytes() for name in LEVELS}

    check = _command(tmp_path, payload, "sweep", *FAMILIES, "--seeds", "0", "1", "--check")
    assert check.handler(check) == 0
    printed = capsys.readouterr().out
    assert "OK; 2 seeds x (dense + 2 level(s))" in printed
    assert "3 of 6 (stage, seed) pairs finished with these settings (reused), 3 to compute" in printed
    assert "efficiency.json: 2 of 4 (level, seed) records reused" in printed
    assert _mtimes(out) == plain and not (out / "recipe.json").exists()  # --check writes nothing

    args = _command(tmp_path, payload, "sweep", *FAMILIES, "--seeds", "0", "1")
    assert args.handler(args) == 0
    assert counted == {"train_dense": 2, "prune_and_distill": 4, "attack": 6}  # seed 1 only
    assert {k: v for k, v in _mtimes(out).items() if k in plain} == plain  # seed 0's stages untouched
    assert all((out / "seed-0" / n / "efficiency.json").read_bytes() == efficiency_0[n] for n in LEVELS)
    assert set(_mtimes(out)) == {f"seed-{s}/{stage}" for s in (0, 1) for stage in ("dense", *LEVELS)}
    assert "3 of 6 (stage, seed) pairs computed, 3 reused" in capsys.readouterr().out
    for seed in (0, 1):  # each seed has its own one-seed families report
        assert json.loads((out / f"seed-{seed}/sweep/report.json").read_text())["kind"] == "hfprune_families_report"

    report = json.loads((out / "sweep" / "report.json").read_text())
    assert report["kind"] == "hfprune_families_seeds_report" and report["seeds"] == [0, 1]
    dense = [_stage(out, f"seed-{s}/dense") for s in (0, 1)]
    for name in LEVELS:
        level = name.split("/")[1]
        runs = [_stage(out, f"seed-{s}/{name}") for s in (0, 1)]
        records = [json.loads((out / f"seed-{s}" / name / "efficiency.json").read_text()) for s in (0, 1)]
        metrics = report["metrics"][level]
        kept = [run["sparsity"]["weights_kept"] / d["sparsity"]["weights_total"]
                for run, d in zip(runs, dense, strict=True)]
        assert metrics["remaining prunable weights"]["per_seed"] == {"0": kept[0], "1": kept[1]}
        assert kept == pytest.approx([1 - P, 1 - P], abs=1e-3)
        latency = [r["latency"]["batches"]["1"]["pruned_ms"] for r in records]
        assert metrics["ms b1 dense kernel"]["mean"] == pytest.approx(np.mean(latency), abs=1e-12)
        assert metrics["safetensors MB"]["per_seed"] == {str(s): r["safetensors_bytes"] / 1e6 for s, r in
                                                         zip((0, 1), records, strict=True)}
        accuracy = [run["quality"]["value"] for run in runs]
        assert metrics["accuracy"]["mean"] == pytest.approx(np.mean(accuracy), abs=1e-12)
        assert metrics["accuracy"]["sd"] == pytest.approx(np.std(accuracy, ddof=1), abs=1e-12)
        # the pooled test: a t-test over the 32 examples of the correctness averaged over both seeds, as scipy does
        # it; varied_accuracy draws from (seed, heads kept), so the weight level (every head kept) scores as dense
        change = next(c for c in report["changes"][level] if c["metric"] == "accuracy")
        pruned_mean = np.mean([r["quality"]["per_example"] for r in runs], axis=0)
        dense_mean = np.mean([d["quality"]["per_example"] for d in dense], axis=0)
        if level == "weight-0.75":
            assert np.array_equal(pruned_mean, dense_mean) and (change["difference"], change["p_value"]) == (0, 1)
        else:
            expected = stats.ttest_rel(pruned_mean, dense_mean)
            assert change["p_value"] == pytest.approx(expected.pvalue, rel=1e-9) and change["verdict"]
            assert change["difference"] == pytest.approx(pruned_mean.mean() - dense_mean.mean(), abs=1e-12)
        assert report["equal_parameters"]["1"]["0.75"]["remaining"][level.split("-")[0]] == kept[1]
    dense_ms = [np.median([r["latency"]["batches"]["1"]["dense_ms"] for r in
                           (json.loads((out / f"seed-{s}" / n / "efficiency.json").read_text()) for n in LEVELS)])
                for s in (0, 1)]
    assert report["metrics"]["dense"]["ms b1 dense kernel"]["mean"] == pytest.approx(np.mean(dense_ms), abs=1e-12)

    markdown = (out / "sweep" / "report.md").read_text()
    assert markdown.split("\n## ")[1].startswith("What pruning changed")
    section = markdown.split("## Families at equal parameter count")[1].split("\n## ")[0]
    weight = next(line for line in section.splitlines() if line.startswith("| weight | 0.75 |"))
    assert f"| {_cell(report['metrics']['weight-0.75']['accuracy'], 4)} |" in weight
    structured = next(line for line in section.splitlines() if line.startswith("| structured | 0.75 |"))
    assert "n/a (no zeroed weights)" in structured  # whole units removed: no CSR kernel to time
    assert "- seed 1, p = 0.75: remaining prunable weights" in section
    assert (out / "sweep" / "plots" / "families.png").read_bytes()[:8] == PNG_MAGIC

    before = _mtimes(out)
    assert args.handler(args) == 0  # again: nothing trained, measured or replaced
    assert counted == {"train_dense": 2, "prune_and_distill": 4, "attack": 6} and _mtimes(out) == before
    assert "0 of 6 (stage, seed) pairs computed, 6 reused" in capsys.readouterr().out


def test_a_folder_of_other_things_is_refused_in_one_line(tiny_model_dir, tmp_path):
    from hfprune.pipeline.seeds import check_root

    out = tmp_path / "run"
    payload = tiny_payload(tiny_model_dir, out)
    recipe = Recipe.from_dict({**payload, "training": {**payload["training"], "seeds": [0, 1]}})
    (out / "seed-0").mkdir(parents=True)
    (out / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"^output\.dir: .* nor only seed-<s>/ runs of this recipe beside plain "
                       r"files; choose another folder$"):
        check_root(recipe)  # no seed folder records a run
    seed_0 = dataclasses.replace(recipe, training=dataclasses.replace(recipe.training, seed=0, seeds=None,
                                                                      split_seed=0))
    (out / "seed-0" / "recipe.json").write_text(json.dumps({**seed_0.to_dict(), "fingerprint": seed_0.fingerprint()}))
    check_root(recipe)  # seed 0 of this recipe, beside a plain file: resumed
    (out / "data").mkdir()
    with pytest.raises(ConfigError, match=r"^output\.dir: .* beside plain files \(data\); choose another folder$"):
        check_root(recipe)
    (out / "data").rmdir()
    other = dataclasses.replace(seed_0, training=dataclasses.replace(seed_0.training, learning_rate=0.5))
    (out / "seed-0" / "recipe.json").write_text(json.dumps({**other.to_dict(), "fingerprint": other.fingerprint()}))
    with pytest.raises(ConfigError, match=r"^output\.dir: .*seed-0/recipe\.json records another recipe than seed 0 "
                       r"of this one \(changed: training\.learning_rate\); choose another folder$"):
        check_root(recipe)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "seed-0"]
    assert not (out / "seed-0" / STAGE_FILE).exists()
