"""Exact McNemar tests of the paper-budget cells finished so far (issue 17): each pruned run against the dense
teacher, movement_ste against snip_momentum in the same seed, and each paper-budget run against the same cell at
the grid's 63-step budget (benchmarks/accuracy_seeds), Holm across them.

    python benchmarks/accuracy_paper_budget/paired.py OUT/accuracy.json > benchmarks/accuracy_paper_budget/paired.md
"""

import json
import sys
from pathlib import Path

from hfprune.audit.compare import compare_accuracy, holm

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


if __name__ == "__main__":
    main(sys.argv[1])
