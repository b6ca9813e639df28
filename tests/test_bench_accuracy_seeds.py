"""The seeds report of scripts/bench_accuracy.py on constructed per-example records (no training): pooled and
per-seed paired tests against scipy, Holm, verdicts, the per-cell spread and merging rows from two processes."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script
from scipy import stats

from hfprune import training
from hfprune.audit import seeds
from hfprune.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_accuracy.py"
N = 300


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def _flip(vector: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(vector.size) < rate, 1 - vector, vector)


@pytest.fixture(scope="module")
def payload():
    """A teacher right on 85% of N examples; scorer 'good' close to it, 'bad' clearly worse, 3 seeds each."""
    rng = np.random.default_rng(0)
    teacher = (rng.random(N) < 0.85).astype(int)
    rows = []
    for scoring, rate, worse in (("good", 0.04, 0.0), ("bad", 0.04, 0.15)):
        for seed in (0, 1, 2):
            correct = _flip(teacher, rate, rng)
            correct = np.where(rng.random(N) < worse, 0, correct)
            rows.append({"sparsity": 0.5, "scoring": scoring, "distill": True, "seed": seed,
                         "accuracy": float(correct.mean()), "seconds": 10.0 + seed, "flops_sparsity": 0.5,
                         "correct": correct.tolist()})
    return {"command": "test", "dense_accuracy": float(teacher.mean()), "wall_time_s": 63.0,
            "teacher": {"settings": {}, "accuracy": float(teacher.mean()), "correct": teacher.tolist()},
            "rows": rows}


def _runs(payload, scoring):
    return np.array([r["correct"] for r in payload["rows"] if r["scoring"] == scoring])


def test_pooled_test_is_a_t_test_over_examples_of_the_seed_averaged_correctness(payload):
    teacher = np.array(payload["teacher"]["correct"])
    bad = _runs(payload, "bad")
    result = seeds.pooled_accuracy([teacher], bad, metric="bad - dense")
    expected = stats.ttest_rel(bad.mean(axis=0), teacher)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert (result.low, result.high) == pytest.approx(tuple(expected.confidence_interval(0.95)), rel=1e-9)
    assert result.difference == pytest.approx(bad.mean() - teacher.mean(), abs=1e-12)  # = mean accuracy difference
    assert result.low < result.difference < result.high
    same = seeds.pooled_accuracy([teacher], [teacher, teacher], metric="same")
    assert (same.p_value, same.difference, same.low) == (1.0, 0.0, None)
    assert (result.dense, result.pruned, result.n) == (pytest.approx(teacher.mean()), pytest.approx(bad.mean()), N)


def test_a_pooled_interval_past_the_possible_differences_is_clipped_to_them():
    """Four examples, the candidate right on three the reference got wrong: scipy's t interval reaches past +1, which
    no difference of 0/1 outcomes can; the p-value stays scipy's."""
    reference, candidate = np.array([0, 0, 0, 1]), np.array([[1, 1, 1, 1]])
    expected = stats.ttest_rel(candidate[0], reference)
    low, high = expected.confidence_interval(0.95)
    assert high > 1  # the case the clip is for
    result = seeds.pooled_accuracy([reference], candidate, metric="candidate - reference")
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert (result.low, result.high) == (pytest.approx(low, rel=1e-12), 1.0)


def test_per_seed_tests_are_exact_mcnemar_against_scipy(payload):
    good, bad = _runs(payload, "good"), _runs(payload, "bad")
    results = seeds.per_seed_accuracy(good, bad, metric="bad - good", seeds=[0, 1, 2])
    for i, result in enumerate(results):
        only_good = int(np.sum((good[i] == 1) & (bad[i] == 0)))
        only_bad = int(np.sum((good[i] == 0) & (bad[i] == 1)))
        assert result.p_value == pytest.approx(stats.binomtest(only_bad, only_good + only_bad).pvalue, rel=1e-12)
        assert result.metric == f"bad - good, seed {i}"
    with pytest.raises(ConfigError, match="one seed per candidate run"):
        seeds.per_seed_accuracy(good[:2], bad, metric="x", seeds=[0, 1, 2])


def test_seed_spread_is_mean_sd_and_range():
    spread = seeds.seed_spread([0.80, 0.83, 0.81])
    assert (spread.mean, spread.low, spread.high, spread.n) == (pytest.approx(0.81333333), 0.80, 0.83, 3)
    assert spread.sd == pytest.approx(np.std([0.80, 0.83, 0.81], ddof=1))
    assert np.isnan(seeds.seed_spread([0.8]).sd)


def test_report_holm_and_verdicts(bench, payload):
    pooled, per_seed = bench.comparisons(payload, ["bad:good"])
    assert [c.metric for c in pooled] == ["bad + KD at 50% - dense", "good + KD at 50% - dense",
                                          "bad + KD at 50% - good + KD at 50%"]
    raw = np.array([c.p_value for c in pooled])
    order = np.argsort(raw)
    holm = np.minimum(1, np.maximum.accumulate(raw[order] * (raw.size - np.arange(raw.size))))
    assert [c.p_adjusted for c in np.array(pooled)[order]] == pytest.approx(holm.tolist(), rel=1e-12)
    verdicts = {c.metric: c.verdict for c in pooled}
    assert verdicts["bad + KD at 50% - dense"] == "lower"
    assert verdicts["bad + KD at 50% - good + KD at 50%"] == "lower"
    assert len(per_seed) == 9  # 3 comparisons x 3 seeds, their own Holm family
    assert max(c.p_adjusted for c in per_seed) <= 1.0
    markdown = bench.to_markdown(payload, ["bad:good"])
    bad_spread = seeds.seed_spread([r["accuracy"] for r in payload["rows"] if r["scoring"] == "bad"])
    assert f"| 50% | bad | yes | 3 (0, 1, 2) | {bad_spread.mean:.4f} | {bad_spread.sd:.4f} |" in markdown
    assert "Holm's correction runs across the 3 pooled comparisons" in markdown


def test_rows_from_two_processes_merge_and_old_rows_keep_their_seed(bench, tmp_path):
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps({"rows": [{"sparsity": 0.5, "scoring": "movement", "distill": True,
                                          "seconds": 5.0}]}))
    first = {"sparsity": 0.5, "scoring": "movement", "distill": True, "seed": 1, "seconds": 7.0}
    second = {"sparsity": 0.5, "scoring": "snip_momentum", "distill": True, "seed": 1, "seconds": 9.0}
    bench.add_row(path, first, default_seed=0)
    bench.add_row(path, second, default_seed=0)
    bench.add_row(path, first, default_seed=0)  # a row already recorded is not added twice
    rows = json.loads(path.read_text())["rows"]
    assert [bench.row_key(r, 0) for r in rows] == ["0.5-movement-True-0", "0.5-movement-True-1",
                                                   "0.5-snip_momentum-True-1"]
    assert json.loads(path.read_text())["wall_time_s"] == 16.0


def test_a_cell_claimed_by_a_live_process_is_skipped_and_a_dead_ones_claim_lapses(bench, tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps({"rows": [{"sparsity": 0.5, "scoring": "movement", "distill": True, "seed": 0,
                                          "seconds": 1.0}]}))
    assert not bench.claim(path, "0.5-movement-True-0", 0)  # already recorded
    assert bench.claim(path, "0.5-movement-True-1", 0)
    assert bench.claim(path, "0.5-movement-True-1", 0)  # this process's own claim
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    try:
        claims = json.loads((tmp_path / ".claims.json").read_text())
        claims.update({"0.5-movement-True-2": live.pid, "0.5-snip_momentum-True-0": int(dead.stdout)})
        (tmp_path / ".claims.json").write_text(json.dumps(claims))
        assert not bench.claim(path, "0.5-movement-True-2", 0)
        assert bench.claim(path, "0.5-snip_momentum-True-0", 0)
        assert json.loads((tmp_path / ".claims.json").read_text())["0.5-snip_momentum-True-0"] == os.getpid()
    finally:
        live.kill()
        live.wait()


def test_latency_cells_get_their_own_key_and_are_compared_with_the_sparsity_cells(bench, payload, tmp_path):
    """A latency-targeted cell (the 'good' rows relabelled as target 2.0x, sparsity 0) is its own cell: compared
    with dense, and with the sparsity cell of the same scorer and distillation (candidate - reference, paired t over
    examples pooling the seeds, against scipy); its measured speedups reach the report."""
    rows = [dict(r) for r in payload["rows"]]
    latency = [{**r, "sparsity": 0.0, "latency_target": 2.0, "min_heads_per_layer": 0, "min_neurons_per_layer": 0,
                "latency": {"predicted_speedup": 2.0, "speedup": 1.8 + r["seed"] / 100, "repeated_speedups": [1.8, 1.7],
                            "batch_size": 1, "seq_len": 128, "threads": 1, "rounds": 20,
                            "heads_per_layer": [12, 0], "ffn_per_layer": [1536, 0]}}
               for r in rows if r["scoring"] == "good"]
    mixed = {**payload, "rows": rows + latency}
    assert bench.row_key(latency[0]) == "lt2.0-min0.0-0.0-good-True-0" != bench.row_key(rows[0])
    other_minimums = {**latency[0], "min_heads_per_layer": 1, "min_neurons_per_layer": 1}
    assert bench.row_key(other_minimums) == "lt2.0-min1.1-0.0-good-True-0"  # another cell
    pooled, per_seed = bench.comparisons(mixed, [])
    by_name = {c.metric: c for c in pooled}
    versus = by_name["good + KD at latency target 2x, min 0/0 - good + KD at 50%"]
    assert "good + KD at latency target 2x, min 0/0 - bad + KD at 50%" not in by_name  # only at equal scorer
    assert (versus.difference, versus.p_value) == (0.0, 1.0)  # the same outcomes: no difference
    assert len(pooled) == 4 and len(per_seed) == 12  # 3 cells against dense + 1 across levels, x 3 seeds
    markdown = bench.to_markdown(mixed, [])
    assert "| latency target 2x, min 0/0 | good | yes | 3 (0, 1, 2) |" in markdown
    assert "| 1.81x (3) |" in markdown  # the mean measured speedup of the three seeds
    assert "| 2.00x | 1.80x (1.80, 1.70) |" in markdown
    bench.plot_speedup(mixed, tmp_path / "speedup.png")
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"


def test_a_latency_cell_against_a_different_sparsity_cell_is_scipys_paired_t(bench, payload):
    latency = [{**r, "sparsity": 0.0, "latency_target": 2.0, "scoring": "good", "min_heads_per_layer": 0,
                "min_neurons_per_layer": 0}
               for r in payload["rows"] if r["scoring"] == "bad"]
    mixed = {**payload, "rows": payload["rows"] + latency}
    pooled, _ = bench.comparisons(mixed, [])
    versus = {c.metric: c for c in pooled}["good + KD at latency target 2x, min 0/0 - good + KD at 50%"]
    good, bad = _runs(payload, "good"), _runs(payload, "bad")
    expected = stats.ttest_rel(bad.mean(axis=0), good.mean(axis=0))
    assert versus.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert versus.difference == pytest.approx(bad.mean() - good.mean(), abs=1e-12)


def test_teacher_from_copies_the_teacher_record_and_finished_cells_only_report(bench, payload, tmp_path):
    """--teacher with --teacher-from: the teacher's accuracy and per-example correctness come from the JSON of the
    run that trained it; with every asked cell already recorded nothing trains and the report compares with it."""
    source = tmp_path / "source.json"
    source.write_text(json.dumps({"rows": [], "teacher": payload["teacher"],
                                  "dense_accuracy": payload["dense_accuracy"]}))
    good = [r for r in payload["rows"] if r["scoring"] == "good"]
    bad = [r for r in payload["rows"] if r["scoring"] == "bad"]
    earlier = tmp_path / "earlier.json"  # --reuse-rows: two 'bad' cells and a cell not asked for
    earlier.write_text(json.dumps({"rows": [*bad[:2], {**bad[0], "sparsity": 0.7}]}))
    other = tmp_path / "other.json"  # a second file: the third 'bad' cell, and one the first file already gave
    other.write_text(json.dumps({"rows": [{**bad[0], "accuracy": 0.0}, bad[2]]}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "accuracy.json").write_text(json.dumps({"rows": good, "wall_time_s": 33.0}))
    bench.main(["--teacher", str(tmp_path / "teacher"), "--teacher-from", str(source), "--sparsities", "0.5",
                "--scorers", "good", "bad", "--distill", "on", "--seeds", "0", "1", "2", "--pairs", "--out",
                str(out), "--reuse-rows", str(earlier), str(other)])
    written = json.loads((out / "accuracy.json").read_text())
    assert written["teacher"]["correct"] == payload["teacher"]["correct"]
    assert written["dense_accuracy"] == payload["dense_accuracy"]
    assert [bench.row_key(r) for r in written["rows"]] == [bench.row_key(r) for r in good + bad]
    assert [r.get("reused_from") for r in written["rows"]] == [None] * 3 + [str(earlier)] * 2 + [str(other)]
    assert written["rows"][3]["accuracy"] == bad[0]["accuracy"]  # the first file that has a cell gives it
    assert written["wall_time_s"] < 60  # the copied cells' times were spent elsewhere
    markdown = (out / "accuracy.md").read_text()
    assert "bad + KD at 50% - dense" in markdown and f"copied from {earlier}, {other}" in markdown
    assert "| 50% | bad | yes | 0 * |" in markdown
    with pytest.raises(SystemExit):
        bench.parse_args(["--teacher-from", str(tmp_path / "missing.json")])


def test_a_teacher_fine_tuned_here_records_its_settings_and_wall_time(bench, tmp_path, monkeypatch):
    """Without --teacher the script fine-tunes one (stubbed here); its record carries the settings a resumed run
    compares and the fine-tuning wall time the report quotes."""
    def finetune(config):
        Path(config.output_dir).mkdir(parents=True)  # a second fine-tuning would fail here
        (Path(config.output_dir) / "config.json").write_text("{}")
        return types.SimpleNamespace(accuracy=0.85, output_dir=config.output_dir)

    monkeypatch.setattr(training, "finetune_classifier", finetune)
    args = bench.parse_args(["--out", str(tmp_path), "--teacher-samples", "64", "--seed", "3"])
    payload = {"rows": []}
    folder, accuracy = bench.dense_teacher(args, payload)
    assert (folder, accuracy) == (str(tmp_path / "runs" / "dense"), 0.85)
    assert payload["teacher"]["settings"] == {"train_samples": 64, "epochs": 1.0, "max_length": 64, "seed": 3}
    assert payload["teacher"]["wall_s"] >= 0
    assert bench.dense_teacher(args, payload) == (folder, 0.85)  # finished: reused, not fine-tuned again
    payload["teacher"]["correct"] = [1, 0]
    assert "teacher fine-tuned in" in bench.to_markdown({**payload, "dense_accuracy": 0.85, "command": "c"}, [])
