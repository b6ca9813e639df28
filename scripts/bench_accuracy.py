"""SST-2 dev accuracy of dense, pruned and pruned+distilled MiniLM across sparsities and scorers.

One dense teacher (fine-tuned here on --teacher-samples examples, or --teacher DIR); then, for every sparsity s
(heads and FFN neurons alike), scorer and distillation setting, the same number of pruning steps on the same
--train-samples examples with the same seed. By default those come after the teacher's own examples in the same
shuffle (--train-skip = --teacher-samples): a teacher's outputs on examples it was fine-tuned on are close to the
labels themselves, and then distillation has nothing to add. Accuracy is on the full SST-2 dev set (872), the
dense teacher being the 0% row. Resumable: the teacher and the rows already in the JSON are not recomputed.

Seeds (--seeds 0 1 2): every cell is repeated per seed, which drives the pruning run's initialisation, data order
and any random scoring; the teacher stays one (fine-tuned with --seed) and the pruning examples stay the same slice
of the --seed shuffle. Each row keeps its per-example dev correctness, and the report gives per cell the mean over
seeds, the spread and paired tests (hfprune.audit.seeds): every cell against the dense teacher and the --pairs of
scorers, exact McNemar per seed and a t-test over examples pooling the seeds, Holm-corrected, with verdicts.
Several processes may run the same command on one --out (e.g. two at a time on 2 cores): each claims a cell before
running it (a claim by a process that died lapses), rows are merged into the JSON under a lock, and the last one
to finish writes the report from every row.

    python scripts/bench_accuracy.py --sparsities 0.5 0.3 0.7 0.9 --out benchmarks/accuracy  # the README grid

(measured: 3.3 h of cell time for the 32 cells, 1 thread a cell, two or three cells at a time on 2 cores)
    python scripts/bench_accuracy.py --sparsities 0.5 --scorers movement --out /tmp/acc  # one cell
    python scripts/bench_accuracy.py --sparsities 0.5 --scorers movement movement_ste soft_movement snip_momentum \
        --distill on --seeds 0 1 2 --out benchmarks/accuracy_seeds  # issue 17 at the small budget, 3 seeds
    python scripts/bench_accuracy.py --sparsities 0.5 0.7 --scorers movement movement_ste soft_movement \
        snip_momentum magnitude --out /tmp/acc  # issue 17's scorers (soft_movement with its default settings)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from hfprune.audit import compare, intervals, seeds
from hfprune.pipeline.prune_classifier import PruneClassifierConfig, evaluate_examples, prune_and_evaluate
from hfprune.utils.io import atomic_write_json, atomic_write_text
from hfprune.utils.lock import pid_alive

# issue 17: the estimator against plain movement, soft against hard movement, the estimator against snip_momentum
DEFAULT_PAIRS = [
    "movement_ste:movement", "soft_movement:movement", "movement_ste:snip_momentum", "snip_momentum:movement",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/accuracy"))
    parser.add_argument("--teacher", default=None, help="fine-tuned dense model directory (default: fine-tune one)")
    parser.add_argument("--teacher-from", type=Path, default=None,
                        help="accuracy.json of the run that trained --teacher: its dev accuracy and per-example "
                             "correctness are copied (so cells are tested against the dense model)")
    parser.add_argument("--reuse-rows", type=Path, nargs="+", default=[],
                        help="accuracy.json files of earlier runs with the same teacher and settings: an asked cell "
                             "recorded there (and not here) is copied from the first that has it, marked "
                             "reused_from, instead of run again")
    parser.add_argument("--sparsities", type=float, nargs="*", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--latency-targets", type=float, nargs="*", default=[],
                        help="cells pruned to these predicted speedups (PruningConfig.latency_target) beside the "
                             "--sparsities cells; each gets its measured speedup")
    parser.add_argument("--measure-latency", action="store_true",
                        help="also time every sparsity cell against the teacher on the latency setting")
    parser.add_argument("--latency-batch-size", type=int, default=1)
    parser.add_argument("--latency-seq-len", type=int, default=128)
    parser.add_argument("--latency-threads", type=int, default=1)
    parser.add_argument("--latency-rounds", type=int, default=20, help="interleaved rounds of each measurement")
    parser.add_argument("--latency-repeat", type=int, default=2,
                        help="measurements of each cell's model (the first is the cell's speedup; all are kept)")
    parser.add_argument("--table-rounds", type=int, default=10, help="interleaved rounds per width of the table")
    parser.add_argument("--min-heads", type=int, default=1,
                        help="min_heads_per_layer of latency cells (0: whole attention blocks may go)")
    parser.add_argument("--min-neurons", type=int, default=1,
                        help="min_neurons_per_layer of latency cells (0: whole FFN blocks may go)")
    parser.add_argument("--latency-cache", type=Path, default=None,
                        help="latency table cache folder (sets HFPRUNE_CACHE_DIR): every cell reads one table")
    parser.add_argument("--scorers", nargs="+", default=["movement", "magnitude", "random", "snip_momentum"])
    parser.add_argument("--distill", choices=["both", "on", "off"], default="both")
    parser.add_argument("--teacher-samples", type=int, default=8000, help="examples the dense teacher trains on")
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--train-samples", type=int, default=2000, help="examples every pruning run trains on")
    parser.add_argument("--train-skip", type=int, default=None,
                        help="shuffled examples skipped before the pruning slice (default: --teacher-samples)")
    parser.add_argument("--prune-epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the teacher and of the shuffle that picks the pruning examples")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the pruning runs, each cell once per seed (default: --seed)")
    parser.add_argument("--pairs", nargs="*", default=DEFAULT_PAIRS,
                        help="scorer pairs CANDIDATE:REFERENCE compared at equal sparsity and distillation")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or [args.seed]
    for flag, path in (("--teacher-from", args.teacher_from), *(("--reuse-rows", p) for p in args.reuse_rows)):
        if path is not None and not path.is_file():
            parser.error(f"{flag}: expected an accuracy.json file, got {path}")
    if not args.sparsities and not args.latency_targets:
        parser.error("--sparsities / --latency-targets: expected at least one level")
    for target in args.latency_targets:
        if target <= 1:
            parser.error(f"--latency-targets: expected speedups > 1, got {target!r}")
    if args.latency_cache is not None:
        os.environ["HFPRUNE_CACHE_DIR"] = str(args.latency_cache)
    for pair in args.pairs:
        if pair.count(":") != 1 or not all(pair.split(":")):
            parser.error(f"--pairs: expected CANDIDATE:REFERENCE scorer names, got {pair!r}")
    return args


Level = tuple[float, float, str]
"""A cell's pruning level: (latency target, sparsity, minimum widths 'heads/neurons' of a latency cell)."""


def level(row: dict) -> Level:
    """Rows from before latency cells have target 0; a sparsity cell has no minimum widths of its own here."""
    target = row.get("latency_target", 0.0)
    minimums = f"{row.get('min_heads_per_layer', 1)}/{row.get('min_neurons_per_layer', 1)}" if target else ""
    return target, row["sparsity"], minimums


def level_name(cell_level: Level) -> str:
    target, sparsity, minimums = cell_level
    return f"latency target {target:g}x, min {minimums}" if target else f"{sparsity:.0%}"


def row_key(row: dict, default_seed: int = 0) -> str:
    """Rows written before --seeds existed carry no seed: they ran with the command's --seed."""
    target, _, minimums = level(row)
    prefix = f"lt{target}-min{minimums.replace('/', '.')}-" if target else ""
    return f"{prefix}{row['sparsity']}-{row['scoring']}-{row['distill']}-{row.get('seed', default_seed)}"


def run_cell(args, teacher: str, dense_accuracy: float, cell_level: Level, scoring: str, distill: bool,
             seed: int) -> dict:
    from hfprune.training import idle_cores, torch_threads

    target, sparsity, _ = cell_level
    minimums = f"-min{args.min_heads}.{args.min_neurons}" if target else ""
    name = (f"{f'lt{target}' if target else f's{sparsity}'}{minimums}-{scoring}-{'kd' if distill else 'nokd'}-"
            f"seed{seed}")
    latency = {"latency_target": target, "latency_batch_size": args.latency_batch_size,
               "latency_seq_len": args.latency_seq_len, "latency_threads": args.latency_threads,
               "min_heads_per_layer": args.min_heads, "min_neurons_per_layer": args.min_neurons} if target else {}
    config = PruneClassifierConfig(
        teacher=teacher, train_samples=args.train_samples, prune_epochs=args.prune_epochs,
        train_skip=args.teacher_samples if args.train_skip is None else args.train_skip,
        max_length=args.max_length, head_sparsity=sparsity, ffn_sparsity=sparsity, scoring=scoring,
        distill=distill, seed=seed, split_seed=args.seed, output_dir=str(args.out / "runs" / name), overwrite=True,
        **latency)
    started = time.perf_counter()
    with torch_threads(idle_cores()):  # the teacher's accuracy is known: prune_and_evaluate skips re-evaluating it
        run = prune_and_evaluate(config, Path(teacher), args.out / "runs" / name / "pruned")
    row = {"sparsity": sparsity, "scoring": scoring, "distill": distill, "seed": seed, "accuracy": run.accuracy,
           "dense_accuracy": dense_accuracy, "params": run.report["params"],
           "flops_sparsity": run.report["flops_sparsity"], "seconds": time.perf_counter() - started,
           "correct": run.correct}
    if target:
        row.update(latency_target=target, min_heads_per_layer=args.min_heads, min_neurons_per_layer=args.min_neurons)
    if target or args.measure_latency:
        row["latency"] = measure_cell(args, teacher, args.out / "runs" / name / "pruned")
    return row


def measure_cell(args, teacher: str, folder: Path) -> dict:
    """The saved model's predicted speedup (from the table of the latency setting) and its measured ones, timed
    interleaved against the teacher (hfprune.latency_report), with its per-layer widths."""
    from transformers import AutoModelForSequenceClassification

    from hfprune import latency_report
    from hfprune.pruning import load_pruned
    from hfprune.pruning.latency_report import widths
    from hfprune.pruning.latency_table import latency_table

    dense = AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    pruned = load_pruned(folder).eval()
    # a latency cell's model carries the table its run used; a sparsity cell's is timed against the same table
    table = latency_table(dense, args.latency_batch_size, args.latency_seq_len, args.latency_threads,
                          rounds=args.table_rounds)
    reports = [latency_report(pruned, table, dense, rounds=args.latency_rounds) for _ in range(args.latency_repeat)]
    heads, neurons = widths(pruned)
    return {"predicted_speedup": reports[0].predicted_speedup, "speedup": reports[0].measured.speedup,
            "dense_ms": reports[0].measured.dense_ms, "pruned_ms": reports[0].measured.pruned_ms,
            "repeated_speedups": [r.measured.speedup for r in reports], "batch_size": table.setting["batch_size"],
            "seq_len": table.setting["seq_len"], "threads": table.setting["threads"], "rounds": args.latency_rounds,
            "heads_per_layer": heads, "ffn_per_layer": neurons, "load_average_1min": round(os.getloadavg()[0], 2)}


@contextlib.contextmanager
def json_lock(out: Path):
    """Serialise read-modify-write of the JSON between processes sharing --out (blocking, released on exit)."""
    with open(out / ".accuracy-json.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_payload(json_path: Path) -> dict:
    return json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}


def add_row(json_path: Path, row: dict, default_seed: int) -> dict:
    """Merge one finished row into the JSON as it is now on disk (another process may have added rows)."""
    with json_lock(json_path.parent):
        payload = read_payload(json_path)
        if row_key(row, default_seed) not in {row_key(r, default_seed) for r in payload["rows"]}:
            payload["rows"].append(row)
            payload["wall_time_s"] = payload.get("wall_time_s", 0) + row["seconds"]
        atomic_write_json(json_path, payload)
    return payload


def reuse_rows(json_path: Path, source: Path, asked: set[str], default_seed: int) -> dict:
    """Copy the rows of ``asked`` cells that ``source`` records and ``json_path`` does not (their time was spent
    there: the wall time is not added)."""
    with json_lock(json_path.parent):
        payload = read_payload(json_path)
        have = {row_key(r, default_seed) for r in payload["rows"]}
        for row in read_payload(source)["rows"]:
            key = row_key(row, default_seed)
            if key in asked and key not in have:
                payload["rows"].append({**row, "reused_from": str(source)})
                have.add(key)
        atomic_write_json(json_path, payload)
    return payload


def claim(json_path: Path, key: str, default_seed: int) -> bool:
    """Whether this process may run the cell ``key``: not recorded yet, not claimed by another live process."""
    claims_path = json_path.parent / ".claims.json"
    with json_lock(json_path.parent):
        if key in {row_key(r, default_seed) for r in read_payload(json_path)["rows"]}:
            return False
        claims = json.loads(claims_path.read_text()) if claims_path.is_file() else {}
        holder = claims.get(key)
        if holder is not None and holder != os.getpid() and pid_alive(holder):
            return False
        claims[key] = os.getpid()
        atomic_write_json(claims_path, claims)
    return True


def teacher_correct(args, teacher: str) -> list[int]:
    """The dense teacher's per-example dev correctness (an evaluation pass, ~1 min on 1 thread)."""
    from hfprune.training import idle_cores, torch_threads

    config = PruneClassifierConfig(teacher=teacher, max_length=args.max_length, output_dir=str(args.out / "runs"))
    with torch_threads(idle_cores()):
        return evaluate_examples(config, Path(teacher))


def dense_teacher(args, payload: dict) -> tuple[str, float]:
    """The teacher directory and its dev accuracy; a teacher finished by an earlier run is reused."""
    if args.teacher:  # its accuracy is known only when the JSON records it (e.g. copied from the run that trained it)
        return args.teacher, payload.get("dense_accuracy", float("nan"))
    from hfprune.training import FinetuneConfig, finetune_classifier

    config = FinetuneConfig(train_samples=args.teacher_samples, epochs=args.teacher_epochs, max_length=args.max_length,
                            seed=args.seed, output_dir=str(args.out / "runs" / "dense"), overwrite=True)
    settings = {"train_samples": config.train_samples, "epochs": config.epochs, "max_length": config.max_length,
                "seed": config.seed}
    done = payload.get("teacher")
    if done and done["settings"] == settings and (Path(config.output_dir) / "config.json").is_file():
        return config.output_dir, done["accuracy"]
    if payload["rows"]:
        raise SystemExit(f"{args.out}: the recorded rows were pruned from another teacher ({done}); "
                         "use a new --out or delete the JSON")
    started = time.perf_counter()
    result = finetune_classifier(config)
    payload["teacher"] = {"settings": settings, "accuracy": result.accuracy, "wall_s": time.perf_counter() - started}
    return result.output_dir, result.accuracy


LEVEL_HEADER = "level (heads = FFN sparsity, or latency target, min heads/neurons a layer)"


def cell_name(cell_level: tuple[float, float], scoring: str, distill: bool) -> str:
    return f"{scoring}{' + KD' if distill else ''} at {level_name(cell_level)}"


def cells(payload: dict) -> dict[tuple, list[dict]]:
    """(level, scoring, distill) -> its rows, in seed order."""
    grouped: dict[tuple, list[dict]] = {}
    for r in payload["rows"]:
        grouped.setdefault((level(r), r["scoring"], r["distill"]), []).append(r)
    return {key: sorted(rows, key=lambda r: r.get("seed", 0)) for key, rows in sorted(grouped.items())}


def comparisons(payload: dict, pairs: list[str]) -> tuple[list[compare.Comparison], list[compare.Comparison]]:
    """Pooled (t-test over examples, seeds averaged) and per-seed (exact McNemar) comparisons, each family
    Holm-corrected on its own: every cell against the dense teacher, then each CANDIDATE:REFERENCE scorer pair at
    equal level and distillation over the seeds both ran, then each cell with distillation against the same scorer
    and level without it, then each latency-targeted cell against each sparsity cell of the same scorer and
    distillation. Rows without per-example records are left out."""
    grouped = {key: [r for r in rows if "correct" in r] for key, rows in cells(payload).items()}
    teacher = (payload.get("teacher") or {}).get("correct")
    planned: list[tuple[str, list, list, list[int]]] = []
    if teacher:
        for (cell_level, scoring, distill), rows in grouped.items():
            if rows:
                planned.append((f"{cell_name(cell_level, scoring, distill)} - dense", [teacher],
                                [r["correct"] for r in rows], [r.get("seed", 0) for r in rows]))
    for pair in pairs:
        candidate, reference = pair.split(":")
        for (cell_level, scoring, distill), rows in grouped.items():
            other = {r.get("seed", 0): r for r in grouped.get((cell_level, reference, distill), [])}
            both = [r for r in rows if scoring == candidate and r.get("seed", 0) in other]
            if both:
                name = f"{cell_name(cell_level, candidate, distill)} - {cell_name(cell_level, reference, distill)}"
                planned.append((name,
                                [other[r.get("seed", 0)]["correct"] for r in both], [r["correct"] for r in both],
                                [r.get("seed", 0) for r in both]))
    for (cell_level, scoring, distill), rows in grouped.items():  # what distillation changed, scorer, level equal
        without = {r.get("seed", 0): r for r in grouped.get((cell_level, scoring, False), [])}
        both = [r for r in rows if distill and r.get("seed", 0) in without]
        if both:
            planned.append((f"{cell_name(cell_level, scoring, True)} - {cell_name(cell_level, scoring, False)}",
                            [without[r.get("seed", 0)]["correct"] for r in both], [r["correct"] for r in both],
                            [r.get("seed", 0) for r in both]))
    for (cell_level, scoring, distill), rows in grouped.items():  # latency-targeted against sparsity-targeted
        for (other_level, other_scoring, other_distill), others in grouped.items():
            if not cell_level[0] or other_level[0] or (other_scoring, other_distill) != (scoring, distill):
                continue
            by_seed = {r.get("seed", 0): r for r in others}
            both = [r for r in rows if r.get("seed", 0) in by_seed]
            if both:
                name = f"{cell_name(cell_level, scoring, distill)} - {cell_name(other_level, scoring, distill)}"
                planned.append((name,
                                [by_seed[r.get("seed", 0)]["correct"] for r in both], [r["correct"] for r in both],
                                [r.get("seed", 0) for r in both]))
    pooled = [seeds.pooled_accuracy(ref, cand, metric=name) for name, ref, cand, _ in planned]
    per_seed = [c for name, ref, cand, run_seeds in planned
                for c in seeds.per_seed_accuracy(ref, cand, metric=name, seeds=run_seeds)]
    return compare.decide(pooled), compare.decide(per_seed)


def _spread(spread: seeds.SeedSpread, scale: float = 1.0, digits: int = 4) -> str:
    sd = "-" if math.isnan(spread.sd) else f"{scale * spread.sd:.{digits}f}"
    return f"{scale * spread.mean:.{digits}f} | {sd} | {scale * spread.low:.{digits}f}-{scale * spread.high:.{digits}f}"


def _difference(c: compare.Comparison) -> str:
    """The difference in points with its interval (none when too few examples for a bootstrap)."""
    interval = "" if c.low is None or c.high is None else f" [{100 * c.low:+.1f}, {100 * c.high:+.1f}]"
    return f"{100 * c.difference:+.1f} pt{interval}"


def to_markdown(payload: dict, pairs: list[str] | None = None) -> str:
    pairs = DEFAULT_PAIRS if pairs is None else pairs
    dense = payload["dense_accuracy"]
    teacher = payload.get("teacher") or {}
    dense_line = f"Dense accuracy: {dense:.4f}"
    if teacher.get("correct"):
        correct = teacher["correct"]
        low, high = intervals.proportion_ci(sum(correct), len(correct))
        dense_line += f" [{low:.4f}, {high:.4f}] (Clopper-Pearson 95%, n = {len(correct)})"
    if teacher.get("wall_s"):
        dense_line += f", teacher fine-tuned in {teacher['wall_s']:.0f} s"
    commands = payload.get("commands") or [payload["command"]]
    label = "Commands (sharing this --out)" if len(commands) > 1 else "Command"
    lines = [f"{label}: " + "; ".join(f"`{c}`" for c in commands) + "  ",
             f"{dense_line}; wall time {payload.get('wall_time_s', 0):.0f} s (sum of cell times)", ""]
    grouped = cells(payload)
    if any(len(rows) > 1 for rows in grouped.values()):
        lines += ["Mean over seeds (one dense teacher; the seed drives each pruning run's initialisation and data "
                  "order), sample standard deviation and range across seeds:", "",
                  f"| {LEVEL_HEADER} | scorer | distillation | seeds | mean dev accuracy | sd | min-max | "
                  "mean vs dense | mean wall s | measured speedup (seeds timed) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (cell_level, scoring, distill), rows in grouped.items():
            spread = seeds.seed_spread([r["accuracy"] for r in rows])
            run_seeds = ", ".join(str(r.get("seed", 0)) for r in rows)
            timed = [r["latency"]["speedup"] for r in rows if "latency" in r]
            speedup = f"{sum(timed) / len(timed):.2f}x ({len(timed)})" if timed else "-"
            lines.append(f"| {level_name(cell_level)} | {scoring} | {'yes' if distill else 'no'} | {spread.n} "
                         f"({run_seeds}) | {_spread(spread)} | {100 * (spread.mean - dense):+.1f} pt | "
                         f"{sum(r['seconds'] for r in rows) / len(rows):.0f} | {speedup} |")
        lines += ["", "Every run:", ""]
    lines += [f"| {LEVEL_HEADER} | scorer | distillation | seed | dev accuracy | vs dense | layer FLOPs removed "
              "| wall s | predicted speedup | measured speedup (each measurement) |",
              "|---|---|---|---|---|---|---|---|---|---|",
              f"| 0% (dense teacher) | - | - | - | {dense:.4f} | +0.0 pt | 0% | - | - | - |"]
    for rows in grouped.values():
        for r in rows:
            timing = r.get("latency")
            speed = (f"{timing['predicted_speedup']:.2f}x | {timing['speedup']:.2f}x ("
                     f"{', '.join(f'{x:.2f}' for x in timing['repeated_speedups'])})" if timing else "- | -")
            reused = " *" if r.get("reused_from") else ""
            lines.append(f"| {level_name(level(r))} | {r['scoring']} | {'yes' if r['distill'] else 'no'} | "
                         f"{r.get('seed', '-')}{reused} | {r['accuracy']:.4f} | "
                         f"{100 * (r['accuracy'] - dense):+.1f} pt | "
                         f"{r['flops_sparsity']:.1%} | {r['seconds']:.0f} | {speed} |")
    sources = sorted({r["reused_from"] for r in payload["rows"] if r.get("reused_from")})
    if sources:
        lines += ["", f"\\* copied from {', '.join(sources)} (--reuse-rows: same teacher and settings), not run here."]
    timed = [r for rows in grouped.values() for r in rows if "latency" in r]
    if timed:
        setting = timed[0]["latency"]
        lines += ["", f"Speedups: the saved model against the dense teacher at batch {setting['batch_size']}, sequence "
                  f"{setting['seq_len']}, {setting['threads']} thread(s), the median per-round ratio of "
                  f"{setting['rounds']} interleaved rounds (hfprune.latency_report); predicted: the latency table of "
                  "that setting (the one the latency cells pruned against). Widths per layer (heads; FFN neurons):",
                  ""]
        lines += [f"- {cell_name(level(r), r['scoring'], r['distill'])}, seed {r.get('seed', 0)}: "
                  f"{r['latency']['heads_per_layer']}; {r['latency']['ffn_per_layer']}" for r in timed]
    pooled, per_seed = comparisons(payload, pairs)
    most_seeds = max((len(rows) for rows in grouped.values()), default=1)
    if pooled:
        lines += ["", "## Paired comparisons", "",
                  "Candidate - reference (the row names them in that order) on the same dev sentences. **Pooled over "
                  "seeds** (the verdicts): each "
                  "example's correctness is averaged over a model's seeds, and the mean of the per-example "
                  "differences (= the difference of the mean accuracies) gets a t-test and 95% t interval over "
                  "examples. Summing McNemar's discordant counts over seeds would not be valid "
                  "(the same examples repeat in every seed); this test keeps the example as the unit and conditions "
                  "on the seeds run: it says whether these runs differ on the population of sentences, not how a "
                  "further seed would come out. A test over seeds as the unit (two-sided sign test) cannot go "
                  f"below p = {2.0 ** (1 - most_seeds):.3g} with {most_seeds} seed(s), so the per-seed differences "
                  "are listed instead. Holm's correction runs across the "
                  f"{len(pooled)} pooled comparisons; *no detectable change* means these data cannot tell the "
                  "models apart, not that they are equal.", "",
                  "| candidate - reference | reference | candidate | difference [95% CI] | p | Holm p | verdict | "
                  "per-seed differences |",
                  "|---|---|---|---|---|---|---|---|"]
        by_name: dict[str, list[compare.Comparison]] = {}
        for c in per_seed:
            by_name.setdefault(c.metric.rsplit(", seed ", 1)[0], []).append(c)
        for c in pooled:
            each = ", ".join(f"{100 * s.difference:+.1f}" for s in by_name.get(c.metric, []))
            lines.append(f"| {c.metric} | {c.dense:.4f} | {c.pruned:.4f} | {_difference(c)} | {c.p_value:.3g} | "
                         f"{c.p_adjusted:.3g} | {c.verdict} | {each} pt |")
        lines += ["", f"Per seed, exact McNemar (Holm across these {len(per_seed)}):", "",
                  "| candidate - reference | reference | candidate | only reference right | only candidate right | "
                  "difference [95% CI] | p | "
                  "Holm p | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        for c in per_seed:
            only_reference, only_candidate = re.search(r"\((\d+) only dense, (\d+) only pruned\)", c.test).groups()
            lines.append(f"| {c.metric} | {c.dense:.4f} | {c.pruned:.4f} | {only_reference} | {only_candidate} | "
                         f"{_difference(c)} | {c.p_value:.3g} | {c.p_adjusted:.3g} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))


def _save(fig, ax, payload: dict, path: Path, xlabel: str, legend_size: int) -> None:
    """The dense line, labels and legend, written to ``path``."""
    import matplotlib.pyplot as plt

    ax.axhline(payload["dense_accuracy"], color="black", linestyle="--", label="dense")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SST-2 dev accuracy")
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(payload: dict, path: Path) -> None:
    fig, ax = _axes()
    series: dict[str, list] = {}
    for ((target, sparsity, _), scoring, distill), rows in cells(payload).items():  # means over seeds, bars range
        if target:  # no sparsity to place it at: the speedup plot shows it
            continue
        spread = seeds.seed_spread([r["accuracy"] for r in rows])
        series.setdefault(f"{scoring}{' + distill' if distill else ''}", []).append(
            (sparsity, spread.mean, spread.mean - spread.low, spread.high - spread.mean))
    for label, points in sorted(series.items()):
        xs, ys, below, above = zip(*sorted(points), strict=True)
        ax.errorbar(xs, ys, yerr=[below, above], marker="o", capsize=3, label=label)
    _save(fig, ax, payload, path, "fraction of heads and FFN neurons removed", 8)


def plot_speedup(payload: dict, path: Path) -> None:
    """Dev accuracy against measured speedup, one point per timed run, one series per cell."""
    fig, ax = _axes()
    for (cell_level, scoring, distill), rows in cells(payload).items():
        timed = [r for r in rows if "latency" in r]
        if timed:
            ax.plot([r["latency"]["speedup"] for r in timed], [r["accuracy"] for r in timed],
                    marker="s" if cell_level[0] else "o", linestyle="none",
                    label=cell_name(cell_level, scoring, distill))
    _save(fig, ax, payload, path, "measured speedup over the dense teacher", 7)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "accuracy.json"
    command = "python scripts/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    with json_lock(args.out):  # a second process sharing --out waits for the teacher instead of training another
        payload = read_payload(json_path)
        payload["command"] = command
        payload["commands"] = list(dict.fromkeys([*payload.get("commands", []), command]))
        if args.teacher_from and "teacher" not in payload:
            source = read_payload(args.teacher_from)
            if "teacher" not in source:
                raise SystemExit(f"--teacher-from {args.teacher_from}: expected an accuracy.json with a teacher entry")
            payload["teacher"], payload["dense_accuracy"] = source["teacher"], source["dense_accuracy"]
        teacher, dense_accuracy = dense_teacher(args, payload)
        payload.setdefault("dense_accuracy", dense_accuracy)
        if not args.teacher and "correct" not in payload["teacher"]:
            payload["teacher"]["correct"] = teacher_correct(args, teacher)
        atomic_write_json(json_path, payload)
    distill_settings = {"both": [False, True], "on": [True], "off": [False]}[args.distill]
    levels = [(0.0, s, "") for s in args.sparsities] + [(t, 0.0, f"{args.min_heads}/{args.min_neurons}")
                                                         for t in args.latency_targets]
    minimums = {"min_heads_per_layer": args.min_heads, "min_neurons_per_layer": args.min_neurons}
    asked = {row_key({"sparsity": sparsity, "latency_target": target, "scoring": scoring, "distill": distill,
                      "seed": seed, **minimums}, args.seed)
             for seed in args.seeds for target, sparsity, _ in levels for scoring in args.scorers
             for distill in distill_settings}
    for source in args.reuse_rows:
        payload = reuse_rows(json_path, source, asked, args.seed)
    done = {row_key(r, args.seed) for r in payload["rows"]}
    for seed in args.seeds:  # seed-major: a run stopped early leaves whole seeds, every cell in each
        for cell_level in levels:
            target, sparsity, _ = cell_level
            for scoring in args.scorers:
                for distill in distill_settings:
                    row = {"sparsity": sparsity, "latency_target": target, "scoring": scoring, "distill": distill,
                           "seed": seed, **minimums}
                    if row_key(row, args.seed) in done or not claim(json_path, row_key(row, args.seed), args.seed):
                        continue
                    row = run_cell(args, teacher, dense_accuracy, cell_level, scoring, distill, seed)
                    payload = add_row(json_path, row, args.seed)  # after every cell: a stopped run resumes here
                    print(json.dumps({k: v for k, v in row.items() if k != "correct"}), flush=True)
    with json_lock(args.out):
        payload = read_payload(json_path)
        payload["command"] = command
        payload["wall_time_s"] = max(payload.get("wall_time_s", 0), time.perf_counter() - started)
        atomic_write_json(json_path, payload)
    atomic_write_text(args.out / "accuracy.md", to_markdown(payload, args.pairs))
    plot(payload, args.out / "accuracy.png")
    if any("latency" in r for r in payload["rows"]):
        plot_speedup(payload, args.out / "accuracy_speedup.png")
    print(to_markdown(payload, args.pairs))


if __name__ == "__main__":
    main()
