"""Tests behind the README's comparisons, from the numbers the benchmarks already saved (issue 16).

These runs predate per-example records, so the paired tests hfprune now runs (McNemar, DeLong) cannot be redone on
them; what the saved counts and intervals allow is computed instead, and says so:

- accuracy grid (benchmarks/accuracy/accuracy.json): exact intervals of the accuracies; a sign test over the
  distillation pairs (does distillation help more often than it hurts?);
- peers (benchmarks/peers/results.json): Fisher's exact test, best hfprune row against the best peer;
- families (benchmarks/families/report.json): Fisher's exact test on attack success counts (unpaired: the same
  sentences were attacked, but which ones flipped was not kept), and an unpaired z-test on MIA AUC differences with
  each AUC's standard error taken from its 95% bootstrap interval (conservative: the paired test removes the
  shared noise of the same examples).

    python scripts/recheck_readme_claims.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scipy import stats

from hfprune.audit.intervals import proportion_ci

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def accuracy_grid() -> None:
    grid = json.loads((ROOT / "accuracy" / "accuracy.json").read_text())
    n = 872  # SST-2 dev sentences
    dense = round(grid["dense_accuracy"] * n)
    rows = {(r["scoring"], r["sparsity"], r["distill"]): round(r["accuracy"] * n) for r in grid["rows"]}
    best = rows[("snip_momentum", 0.5, True)]
    print(f"dense {dense}/{n} {proportion_ci(dense, n)}; snip_momentum + KD at 50% {best}/{n} "
          f"{proportion_ci(best, n)}; difference {best - dense} sentences")
    helped = hurt = tied = 0
    for (scoring, sparsity, distill), correct in sorted(rows.items()):
        if distill:
            continue
        change = rows[(scoring, sparsity, True)] - correct
        helped, hurt, tied = helped + (change > 0), hurt + (change < 0), tied + (change == 0)
    p_value = stats.binomtest(helped, helped + hurt).pvalue
    print(f"distillation: helped {helped}, hurt {hurt}, tied {tied} of {helped + hurt + tied} pairs; "
          f"sign test p = {p_value:.3f}")


def families() -> None:
    report = json.loads((ROOT / "families" / "report.json").read_text())
    stages = {s["name"]: s["audit"] for s in [report["dense"], *report["levels"]]}
    for recipe in ("deepwordbug", "pwws"):
        counts = {}
        for name, audit in stages.items():
            result = next(r for r in audit["robustness"] if r["recipe"] == recipe)
            attacked = round(result["clean_accuracy"]["value"] * result["n_examples"])
            counts[name] = (round(result["attack_success_rate"]["value"] * attacked), attacked)
        dense = counts["dense"]
        for name, (flipped, attacked) in counts.items():
            if name == "dense":
                continue
            table = [[flipped, attacked - flipped], [dense[0], dense[1] - dense[0]]]
            print(f"{recipe} {name}: {flipped}/{attacked} vs dense {dense[0]}/{dense[1]}, "
                  f"Fisher p = {stats.fisher_exact(table).pvalue:.3f}")
    z_975 = stats.norm.ppf(0.975)

    def auc(audit: dict) -> tuple[float, float]:
        loss = next(r for r in audit["privacy"]["membership"] if r["attack"] == "loss")["auc"]
        return loss["value"], (loss["high"] - loss["low"]) / (2 * z_975)

    dense_auc, dense_se = auc(stages["dense"])
    for name, audit in stages.items():
        if name == "dense":
            continue
        value, se = auc(audit)
        z = (value - dense_auc) / math.hypot(se, dense_se)
        print(f"MIA AUC (loss) {name}: {value:.3f} vs dense {dense_auc:.3f}, difference {value - dense_auc:+.3f}, "
              f"unpaired z-test p = {2 * stats.norm.sf(abs(z)):.3f}")


def peers() -> None:
    rows = json.loads((ROOT / "peers" / "results.json").read_text())["rows"]
    n = 872
    for target in (0.5, 0.75):
        level = [r for r in rows if r["head_sparsity"] == target and r["ffn_sparsity"] == target]
        ours = max((r for r in level if r["method"].startswith("hfprune")), key=lambda r: r["accuracy"])
        peer = max((r for r in level if not r["method"].startswith("hfprune")), key=lambda r: r["accuracy"])
        a, b = round(ours["accuracy"] * n), round(peer["accuracy"] * n)
        p_value = stats.fisher_exact([[a, n - a], [b, n - b]]).pvalue
        print(f"peers {target:.0%}: {ours['label']} {a}/{n} {proportion_ci(a, n)} vs {peer['label']} {b}/{n} "
              f"{proportion_ci(b, n)}, Fisher p = {p_value:.3f}")


if __name__ == "__main__":
    accuracy_grid()
    families()
    peers()
