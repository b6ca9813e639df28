"""benchmarks/accuracy_paper_budget/paired.py on constructed per-example records (no training): the cells without
distillation, their distillation - no distillation and pruned - control tests against scipy, and the same-teacher
check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy_paper_budget" / "paired.py"
N = 200


@pytest.fixture(scope="module")
def paired():
    return load_script(SCRIPT)


def _payload(teacher: np.ndarray, rows: list[dict]) -> dict:
    return {"teacher": {"accuracy": float(teacher.mean()), "correct": teacher.tolist()}, "rows": rows}


def _row(sparsity: float, scoring: str, distill: bool, seed: int, correct: np.ndarray) -> dict:
    return {"sparsity": sparsity, "scoring": scoring, "distill": distill, "seed": seed,
            "accuracy": float(correct.mean()), "seconds": 1.0, "correct": correct.tolist()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    teacher = (rng.random(N) < 0.85).astype(int)

    def runs(rate: float) -> list[np.ndarray]:
        return [np.where(rng.random(N) < rate, 0, teacher) for _ in range(3)]

    nokd, kd, control = runs(0.10), runs(0.05), runs(0.01)
    folder = tmp_path_factory.mktemp("paired")
    paths = {}
    for name, rows in (("nokd", [_row(0.7, "ste", False, s, c) for s, c in enumerate(nokd)]),
                       ("kd", [_row(0.7, "ste", True, s, c) for s, c in enumerate(kd)]),
                       ("control", [_row(0.0, "ste", False, s, c) for s, c in enumerate(control)])):
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(_payload(teacher, rows)))
    paths["other"] = folder / "other.json"
    paths["other"].write_text(json.dumps(_payload(1 - teacher, [])))
    return paths, teacher, nokd, kd, control


def _pooled_p(output: str, metric: str) -> float:
    """The p column of a pooled row (printed to 2 significant digits, hence rel=0.05 below)."""
    line = next(line for line in output.splitlines() if line.startswith(f"| {metric}"))
    return float(line.split("|")[5])


def test_cells_without_distillation_against_kd_and_control_are_scipys_paired_t(paired, files, capsys):
    paths, teacher, nokd, kd, control = files
    paired.main([str(paths["nokd"]), "--sparsity", "0.7", "--distill", "off", "--grid", "none",
                 "--with-kd", str(paths["kd"]), "--control", str(paths["control"]), "--pairs"])
    output = capsys.readouterr().out
    assert "ste without KD seed 2 - dense" in output and "+ KD seed" not in output
    expected = stats.ttest_rel(np.mean(kd, axis=0), np.mean(nokd, axis=0)).pvalue
    assert _pooled_p(output, "ste: distillation - no distillation") == pytest.approx(expected, rel=0.05)
    expected = stats.ttest_rel(np.mean(nokd, axis=0), np.mean(control, axis=0)).pvalue
    assert _pooled_p(output, "ste without KD - control") == pytest.approx(expected, rel=0.05)
    per_seed = stats.binomtest(int(((control[1] == 1) & (nokd[1] == 0)).sum()),
                               int((control[1] != nokd[1]).sum())).pvalue
    line = next(line for line in output.splitlines() if "seed 1 - control (0% removed) seed 1" in line)
    assert float(line.split("|")[5]) == pytest.approx(per_seed, rel=0.05)  # exact McNemar, same seed


def test_a_scorer_with_fewer_seeds_is_pooled_against_the_control_of_those_seeds(paired, files, capsys, tmp_path):
    paths, teacher, nokd, kd, control = files
    two_seeds = tmp_path / "two_seeds.json"
    two_seeds.write_text(json.dumps(_payload(teacher, [_row(0.7, "ste", False, s, nokd[s]) for s in (0, 2)])))
    paired.main([str(two_seeds), "--sparsity", "0.7", "--distill", "off", "--grid", "none",
                 "--control", str(paths["control"]), "--pairs"])
    output = capsys.readouterr().out
    expected = stats.ttest_rel(np.mean([nokd[0], nokd[2]], axis=0), np.mean([control[0], control[2]], axis=0)).pvalue
    assert _pooled_p(output, "ste without KD - control (0% removed), seeds [0, 2]") == pytest.approx(expected, rel=0.05)


def test_files_from_another_teacher_or_without_control_cells_are_refused(paired, files):
    paths = files[0]
    with pytest.raises(SystemExit):
        paired.main([str(paths["nokd"]), "--sparsity", "0.7", "--distill", "off", "--with-kd", str(paths["other"])])
    with pytest.raises(SystemExit):  # the control file has no 0% cells with distillation
        paired.main([str(paths["kd"]), "--sparsity", "0.7", "--grid", "none", "--control", str(paths["control"])])
    with pytest.raises(SystemExit):
        paired.main([str(paths["kd"]), "--sparsity", "0.7", "--with-kd", str(paths["kd"])])
