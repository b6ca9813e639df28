"""SST-2 dev accuracy of dense, pruned and pruned+distilled MiniLM across sparsities and scorers.

One dense teacher (fine-tuned here on --teacher-samples examples, or --teacher DIR); then, for every sparsity s
(heads and FFN neurons alike), scorer and distillation setting, the same number of pruning steps on the same
--train-samples examples with the same seed. By default those come after the teacher's own examples in the same
shuffle (--train-skip = --teacher-samples): a teacher's outputs on examples it was fine-tuned on are close to the
labels themselves, and then distillation has nothing to add. Accuracy is on the full SST-2 dev set (872), the
dense teacher being the 0% row. Resumable: the teacher and the rows already in the JSON are not recomputed.

    python scripts/bench_accuracy.py --sparsities 0.5 0.3 0.7 0.9 --out benchmarks/accuracy  # the README grid

(measured: 3.3 h of cell time for the 32 cells, 1 thread a cell, two or three cells at a time on 2 cores)
    python scripts/bench_accuracy.py --sparsities 0.5 --scorers movement --out /tmp/acc  # one cell
    python scripts/bench_accuracy.py --sparsities 0.5 0.7 --scorers movement movement_ste soft_movement \
        snip_momentum magnitude --out /tmp/acc  # issue 17's scorers (soft_movement with its default settings)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hfprune.pipeline.prune_classifier import PruneClassifierConfig, prune_and_save
from hfprune.utils.io import atomic_write_json, atomic_write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/accuracy"))
    parser.add_argument("--teacher", default=None, help="fine-tuned dense model directory (default: fine-tune one)")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--scorers", nargs="+", default=["movement", "magnitude", "random", "snip_momentum"])
    parser.add_argument("--distill", choices=["both", "on", "off"], default="both")
    parser.add_argument("--teacher-samples", type=int, default=8000, help="examples the dense teacher trains on")
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--train-samples", type=int, default=2000, help="examples every pruning run trains on")
    parser.add_argument("--train-skip", type=int, default=None,
                        help="shuffled examples skipped before the pruning slice (default: --teacher-samples)")
    parser.add_argument("--prune-epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def row_key(row: dict) -> str:
    return f"{row['sparsity']}-{row['scoring']}-{row['distill']}"


def run_cell(args, teacher: str, dense_accuracy: float, sparsity: float, scoring: str, distill: bool) -> dict:
    from hfprune.training import idle_cores, torch_threads

    name = f"s{sparsity}-{scoring}-{'kd' if distill else 'nokd'}"
    config = PruneClassifierConfig(
        teacher=teacher, train_samples=args.train_samples, prune_epochs=args.prune_epochs,
        train_skip=args.teacher_samples if args.train_skip is None else args.train_skip,
        max_length=args.max_length, head_sparsity=sparsity, ffn_sparsity=sparsity, scoring=scoring,
        distill=distill, seed=args.seed, output_dir=str(args.out / "runs" / name), overwrite=True)
    started = time.perf_counter()
    with torch_threads(idle_cores()):  # the teacher's accuracy is known: prune_and_save skips re-evaluating it
        accuracy, report = prune_and_save(config, Path(teacher), args.out / "runs" / name / "pruned")
    return {"sparsity": sparsity, "scoring": scoring, "distill": distill, "accuracy": accuracy,
            "dense_accuracy": dense_accuracy, "params": report["params"],
            "flops_sparsity": report["flops_sparsity"], "seconds": time.perf_counter() - started}


def dense_teacher(args, payload: dict) -> tuple[str, float]:
    """The teacher directory and its dev accuracy; a teacher finished by an earlier run is reused."""
    if args.teacher:
        return args.teacher, float("nan")
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
    result = finetune_classifier(config)
    payload["teacher"] = {"settings": settings, "accuracy": result.accuracy}
    return result.output_dir, result.accuracy


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}`  ", f"Dense accuracy: {payload['dense_accuracy']:.4f}; "
             f"wall time {payload['wall_time_s']:.0f} s", "",
             "| sparsity (heads = FFN) | scorer | distillation | dev accuracy | vs dense | wall s |",
             "|---|---|---|---|---|---|",
             f"| 0% (dense teacher) | - | - | {payload['dense_accuracy']:.4f} | +0.0 pt | - |"]
    for r in sorted(payload["rows"], key=lambda r: (r["sparsity"], r["scoring"], r["distill"])):
        lines.append(f"| {r['sparsity']:.0%} | {r['scoring']} | {'yes' if r['distill'] else 'no'} | "
                     f"{r['accuracy']:.4f} | {100 * (r['accuracy'] - payload['dense_accuracy']):+.1f} pt | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[str, list] = {}
    for r in payload["rows"]:
        series.setdefault(f"{r['scoring']}{' + distill' if r['distill'] else ''}", []).append(
            (r["sparsity"], r["accuracy"]))
    for label, points in sorted(series.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    ax.axhline(payload["dense_accuracy"], color="black", linestyle="--", label="dense")
    ax.set_xlabel("fraction of heads and FFN neurons removed")
    ax.set_ylabel("SST-2 dev accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "accuracy.json"
    payload = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    payload["command"] = "python scripts/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    teacher, dense_accuracy = dense_teacher(args, payload)
    payload.setdefault("dense_accuracy", dense_accuracy)
    atomic_write_json(json_path, payload)
    done = {row_key(r) for r in payload["rows"]}
    distill_settings = {"both": [False, True], "on": [True], "off": [False]}[args.distill]
    for sparsity in args.sparsities:
        for scoring in args.scorers:
            for distill in distill_settings:
                row = {"sparsity": sparsity, "scoring": scoring, "distill": distill}
                if row_key(row) in done:
                    continue
                row = run_cell(args, teacher, dense_accuracy, sparsity, scoring, distill)
                payload["dense_accuracy"] = row["dense_accuracy"]
                payload["rows"].append(row)
                payload["wall_time_s"] = payload.get("wall_time_s", 0) + row["seconds"]
                atomic_write_json(json_path, payload)  # after every cell: an interrupted run resumes here
                print(json.dumps(row), flush=True)
    payload["wall_time_s"] = max(payload.get("wall_time_s", 0), time.perf_counter() - started)
    atomic_write_json(json_path, payload)
    atomic_write_text(args.out / "accuracy.md", to_markdown(payload))
    plot(payload, args.out / "accuracy.png")
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
