"""Accuracy of one pruning family against another at the same parameter sparsity, pooled over the seeds (the
seeds report's test: t over examples of each example's correctness averaged over seeds), Holm across the pairs.

    python benchmarks/families_seeds/between_families.py RUN_DIR > benchmarks/families_seeds/between_families.txt
"""

import json
import sys

from hfprune.audit.compare import holm
from hfprune.audit.seeds import pooled_accuracy

PAIRS = [("structured-0.50", "weight-0.50"), ("structured-0.50", "combined-0.50"), ("combined-0.50", "weight-0.50"),
         ("structured-0.90", "weight-0.90"), ("structured-0.90", "combined-0.90"), ("combined-0.90", "weight-0.90")]


def runs(root: str, level: str) -> list[list[int]]:
    return [json.load(open(f"{root}/seed-{s}/levels/{level}/stage.json"))["quality"]["per_example"] for s in (0, 1, 2)]


def main(root: str) -> None:
    results = [pooled_accuracy(runs(root, a), runs(root, b), metric=f"accuracy {b} - {a}") for a, b in PAIRS]
    for r, adjusted in zip(results, holm([r.p_value for r in results]), strict=True):
        print(f"{r.metric}: {r.difference * 100:+.1f} pt [{r.low * 100:+.1f}, {r.high * 100:+.1f}], "
              f"p = {r.p_value:.2g}, Holm p = {adjusted:.2g} ({r.test})")


if __name__ == "__main__":
    main(sys.argv[1])
