"""Exact McNemar tests of the paper-budget cells (issue 17): each pruned run against the dense teacher,
movement_ste against snip_momentum in the same seed, and each paper-budget run against the same cell at the grid's
63-step budget (benchmarks/accuracy_seeds), Holm across them; then the paper - grid budget difference per scorer
pooled over the seeds both budgets ran (hfprune.audit.seeds.pooled_accuracy: t-test over the 872 sentences of the
correctness averaged over seeds), Holm across those. bench_accuracy's own report (accuracy.md) has the pooled tests
against dense and between the scorers.

    python benchmarks/accuracy_paper_budget/paired.py OUT/accuracy.json > benchmarks/accuracy_paper_budget/paired.md
"""

import json
import sys
from pathlib import Path

from hfprune.audit.compare import compare_accuracy, decide, holm
from hfprune.audit.seeds import pooled_accuracy

GRID = Path(__file__).parent.parent / "accuracy_seeds" / "accuracy.json"


def main(path: str) -> None:
    paper = json.loads(Path(path).read_text())
    grid = {(r["scoring"], r["seed"], r["sparsity"], r["distill"]): r for r in json.loads(GRID.read_text())["rows"]}
    runs = {(r["scoring"], r["seed"]): r for r in paper["rows"] if r["sparsity"] == 0.5 and r["distill"]}
    tests = []
    for (scoring, seed), row in sorted(runs.items()):
        tests.append((f"{scoring} + KD seed {seed} - dense", paper["teacher"]["correct"], row["correct"]))
        if (key := (scoring, seed, 0.5, True)) in grid:
            tests.append((f"{scoring} + KD seed {seed}: paper budget - grid budget", grid[key]["correct"],
                          row["correct"]))
    for seed in sorted({seed for _, seed in runs}):
        if ("movement_ste", seed) in runs and ("snip_momentum", seed) in runs:
            tests.append((f"movement_ste - snip_momentum (+ KD) seed {seed}", runs["snip_momentum", seed]["correct"],
                          runs["movement_ste", seed]["correct"]))
    results = [compare_accuracy(reference, candidate) for _, reference, candidate in tests]
    print(f"Dense teacher {paper['teacher']['accuracy']:.4f}; rows: "
          + ", ".join(f"{s} seed {d} {r['accuracy']:.4f} ({r['seconds']:.0f} s)" for (s, d), r in sorted(runs.items())))
    print()
    print("| comparison | reference | candidate | difference [95% CI] | exact McNemar p | Holm p |")
    print("|---|---|---|---|---|---|")
    for (name, _, _), r, adjusted in zip(tests, results, holm([r.p_value for r in results]), strict=True):
        interval = f"[{r.low * 100:+.1f}, {r.high * 100:+.1f}]" if r.low is not None else ""
        print(f"| {name} | {r.dense:.4f} | {r.pruned:.4f} | {r.difference * 100:+.1f} pt {interval} | {r.p_value:.2g} "
              f"| {adjusted:.2g} |")
    pooled = []
    for scoring in sorted({scoring for scoring, _ in runs}):
        both = [seed for s, seed in sorted(runs) if s == scoring and (scoring, seed, 0.5, True) in grid]
        if both:
            pooled.append(pooled_accuracy([grid[scoring, seed, 0.5, True]["correct"] for seed in both],
                                          [runs[scoring, seed]["correct"] for seed in both],
                                          metric=f"{scoring} + KD: paper budget - grid budget, seeds {both}"))
    print()
    print("| pooled over seeds | grid budget | paper budget | difference [95% CI] | p | Holm p | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in decide(pooled):
        print(f"| {r.metric} | {r.dense:.4f} | {r.pruned:.4f} | {r.difference * 100:+.1f} pt "
              f"[{r.low * 100:+.1f}, {r.high * 100:+.1f}] | {r.p_value:.2g} | {r.p_adjusted:.2g} | {r.verdict} |")


if __name__ == "__main__":
    main(sys.argv[1])
