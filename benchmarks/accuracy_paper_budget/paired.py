"""Exact McNemar tests of the paper-budget cells (issue 17) at one sparsity, with distillation or without
(--distill off): each pruned run against the dense teacher, each --pairs CANDIDATE:REFERENCE scorer pair in the same
seed, and each paper-budget run against the same cell at the grid's 63-step budget (--grid), Holm across them;
then the paper - grid budget difference per scorer pooled over the seeds both budgets ran
(hfprune.audit.seeds.pooled_accuracy: t-test over the 872 sentences of the correctness averaged over seeds), Holm
across those. bench_accuracy's own report (accuracy.md) has the pooled tests against dense and between the scorers.

    python benchmarks/accuracy_paper_budget/paired.py OUT/accuracy.json > benchmarks/accuracy_paper_budget/paired.md
    python benchmarks/accuracy_paper_budget/paired.py OUT70/accuracy.json --sparsity 0.7 \
        --grid benchmarks/accuracy_70_scorers/accuracy.json --pairs movement_ste:magnitude magnitude:random \
        > benchmarks/accuracy_paper_budget_70/paired.md

With --distill off and --with-kd KD/accuracy.json (the same sparsity with distillation, same teacher), each
scorer's distillation - no distillation difference is added to the pooled table. With --control
CONTROL/accuracy.json (0% cells: the same training with nothing removed, same teacher), each run is also tested
against the control of its seed and each scorer against the control pooled over seeds: what pruning cost once the
extra training is accounted for.
"""

import argparse
import json
from pathlib import Path

from hfprune.audit.compare import compare_accuracy, decide, holm
from hfprune.audit.seeds import pooled_accuracy

BENCHMARKS = Path(__file__).parent.parent


def same_teacher_rows(flag: str, path: Path | None, teacher_correct: list[int], sparsity: float,
                      distill: bool) -> dict:
    """(scorer, seed) -> row of ``path`` at ``sparsity`` with or without distillation; ``path`` must record the
    same teacher predictions, or its cells start from another model."""
    if path is None:
        return {}
    payload = json.loads(path.read_text())
    if payload["teacher"]["correct"] != teacher_correct:
        raise SystemExit(f"{flag} {path}: its teacher's dev predictions differ from the compared run's; "
                         "expected the same teacher")
    return {(r["scoring"], r["seed"]): r for r in payload["rows"]
            if r["sparsity"] == sparsity and r["distill"] == distill}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paper", type=Path, help="the paper-budget run's accuracy.json")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--grid", type=Path, default=BENCHMARKS / "accuracy_seeds" / "accuracy.json",
                        help="the same cells at the grid's budget ('none': no budget comparison)")
    parser.add_argument("--pairs", nargs="*", default=["movement_ste:snip_momentum"],
                        help="CANDIDATE:REFERENCE scorers compared seed by seed")
    parser.add_argument("--distill", choices=("on", "off"), default="on", help="which cells: with distillation or not")
    parser.add_argument("--with-kd", type=Path, default=None,
                        help="with --distill off: the paper-budget accuracy.json of the same cells with distillation "
                             "(same teacher), for each scorer's distillation - no distillation difference")
    parser.add_argument("--control", type=Path, default=None,
                        help="accuracy.json with the 0%% cells of the same training (same teacher, same --distill)")
    args = parser.parse_args(argv)
    distill = args.distill == "on"
    kd = " + KD" if distill else " without KD"
    paper = json.loads(args.paper.read_text())
    grid_rows = [] if str(args.grid) == "none" else json.loads(args.grid.read_text())["rows"]
    grid = {(r["scoring"], r["seed"], r["sparsity"], r["distill"]): r for r in grid_rows}
    if args.with_kd and distill:
        parser.error("--with-kd compares against the cells without distillation: use it with --distill off")
    teacher = paper["teacher"]["correct"]
    with_kd = same_teacher_rows("--with-kd", args.with_kd, teacher, args.sparsity, True)
    control = {seed: r for (_, seed), r in same_teacher_rows("--control", args.control, teacher, 0.0, distill).items()}
    if args.control and not control:
        parser.error(f"--control {args.control}: expected 0% cells{kd}")
    runs = {(r["scoring"], r["seed"]): r for r in paper["rows"]
            if r["sparsity"] == args.sparsity and r["distill"] == distill}
    tests = []
    for (scoring, seed), row in sorted(runs.items()):
        tests.append((f"{scoring}{kd} seed {seed} - dense", teacher, row["correct"]))
        if (key := (scoring, seed, args.sparsity, distill)) in grid:
            tests.append((f"{scoring}{kd} seed {seed}: paper budget - grid budget", grid[key]["correct"],
                          row["correct"]))
        if seed in control:
            tests.append((f"{scoring}{kd} seed {seed} - control (0% removed) seed {seed}", control[seed]["correct"],
                          row["correct"]))
    for pair in args.pairs:
        candidate, reference = pair.split(":")
        for seed in sorted({seed for _, seed in runs}):
            if (candidate, seed) in runs and (reference, seed) in runs:
                tests.append((f"{candidate} - {reference} ({kd.strip()}) seed {seed}", runs[reference, seed]["correct"],
                              runs[candidate, seed]["correct"]))
    results = [compare_accuracy(reference, candidate) for _, reference, candidate in tests]
    print(f"Dense teacher {paper['teacher']['accuracy']:.4f}; rows at {args.sparsity:.0%}{kd}: "
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
        seeds = [seed for s, seed in sorted(runs) if s == scoring]
        # (comparison, each seed's other cell, whether these runs are the reference); pooled over the seeds both
        # sides ran, so both sides share their data order
        others = ((f"{scoring}{kd}: paper budget - grid budget",
                   {seed: grid.get((scoring, seed, args.sparsity, distill)) for seed in seeds}, False),
                  (f"{scoring}: distillation - no distillation",
                   {seed: with_kd.get((scoring, seed)) for seed in seeds}, True),
                  (f"{scoring}{kd} - control (0% removed)", {seed: control.get(seed) for seed in seeds}, False))
        for name, other, runs_are_reference in others:
            both = [seed for seed in seeds if other[seed] is not None]
            if both:
                ours = [runs[scoring, seed]["correct"] for seed in both]
                theirs = [other[seed]["correct"] for seed in both]
                reference, candidate = (ours, theirs) if runs_are_reference else (theirs, ours)
                pooled.append(pooled_accuracy(reference, candidate, metric=f"{name}, seeds {both}"))
    print()
    print("| pooled over seeds | reference | candidate | difference [95% CI] | p | Holm p | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in decide(pooled):
        print(f"| {r.metric} | {r.dense:.4f} | {r.pruned:.4f} | {r.difference * 100:+.1f} pt "
              f"[{r.low * 100:+.1f}, {r.high * 100:+.1f}] | {r.p_value:.2g} | {r.p_adjusted:.2g} | {r.verdict} |")


if __name__ == "__main__":
    main()
