"""Pruning itself, with the training budget held fixed: the demo's pruned models (snip_momentum, half the heads and
FFN neurons, 3 epochs of distillation on the members) against a control that trains the same 3 epochs with the same
distillation but prunes nothing (head and FFN sparsity 0), seed by seed, both from the same dense model of each
seed; and each of them against that dense model. hfprune's own paired tests over seeds (hfprune.audit.seeds:
accuracy, attack success and the members' / non-members' loss pooled over seeds, MIA AUC per seed), Holm across
all three comparisons' tests together.

    hfprune run recipes/minilm-sst2-offline.yaml --seeds 0 1 2 --output-dir PRUNED
    hfprune run CONTROL.yaml --seeds 0 1 2 --output-dir CONTROL   # the demo recipe with head/ffn_sparsity 0.0
    python benchmarks/demo_control/compare.py PRUNED CONTROL > benchmarks/demo_control/compare.md
"""

import argparse
from pathlib import Path

from hfprune.audit.compare import ALPHA, PairedRecords, decide
from hfprune.audit.seeds import compare_seeds
from hfprune.pipeline.results import StageResult

SEEDS = (0, 1, 2)


def records(run: Path, stage: str) -> list[PairedRecords]:
    found = []
    for seed in SEEDS:
        result = StageResult.load(run / f"seed-{seed}" / stage)
        found.append(PairedRecords.of(result.quality, result.model_audit))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pruned", type=Path, help="the demo run with 3 seeds")
    parser.add_argument("control", type=Path, help="the same recipe at sparsity 0, the same dense stages")
    args = parser.parse_args()
    dense, pruned, control = records(args.pruned, "dense"), records(args.pruned, "pruned"), records(args.control,
                                                                                                     "pruned")
    # (title, reference name, candidate name, comparisons): hfprune names the two sides "dense" and "pruned"
    comparisons = [("pruning itself, same training: pruned - control", "control", "pruned",
                    compare_seeds(control, pruned, SEEDS)),
                   ("3 more epochs of distillation, nothing pruned: control - dense", "dense", "control",
                    compare_seeds(dense, control, SEEDS)),
                   ("the demo's comparison: pruned - dense", "dense", "pruned", compare_seeds(dense, pruned, SEEDS))]
    flat = [(title, ref, cand, c) for title, ref, cand, metrics in comparisons for cs in metrics.values() for c in cs]
    decided = decide([c for *_, c in flat])
    print(f"Seeds {', '.join(map(str, SEEDS))}; Holm across all {len(flat)} tests below (alpha {ALPHA}); "
          "difference = candidate - reference [95% CI].")
    current = None
    for (title, ref, cand, _), c in zip(flat, decided, strict=True):
        if title != current:
            print(f"\n**{title}**\n")
            current = title
        head, tail = c.line().split("; dense", 1)
        print(f"- {head}; {ref}{tail.replace(', pruned', f', {cand}', 1)}")


if __name__ == "__main__":
    main()
