"""SST-2 dev accuracy of dense, pruned and pruned+distilled MiniLM across sparsities and scorers.

One dense teacher (fine-tuned here, or --teacher DIR); then, for every sparsity s (heads and FFN neurons alike),
scorer and distillation setting, the same number of pruning steps on the same examples with the same seed.
Accuracy is on the full SST-2 dev set (872). Resumable: rows already in the JSON are not recomputed.

    python scripts/bench_accuracy.py --out benchmarks/accuracy                       # full grid (hours on 2 cores)
    python scripts/bench_accuracy.py --sparsities 0.5 --scorers movement --out /tmp/acc  # one cell
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hfprune.utils.io import atomic_write_json, atomic_write_text
from hfprune.workflows.prune_classifier import PruneClassifierConfig, prune_classifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/accuracy"))
    parser.add_argument("--teacher", default=None, help="fine-tuned dense model directory (default: fine-tune one)")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--scorers", nargs="+", default=["movement", "magnitude", "random"])
    parser.add_argument("--distill", choices=["both", "on", "off"], default="both")
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--prune-epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def row_key(row: dict) -> str:
    return f"{row['sparsity']}-{row['scoring']}-{row['distill']}"


def run_cell(args, teacher: str, sparsity: float, scoring: str, distill: bool) -> dict:
    name = f"s{sparsity}-{scoring}-{'kd' if distill else 'nokd'}"
    config = PruneClassifierConfig(
        teacher=teacher, train_samples=args.train_samples, prune_epochs=args.prune_epochs,
        max_length=args.max_length, head_sparsity=sparsity, ffn_sparsity=sparsity, scoring=scoring,
        distill=distill, seed=args.seed, output_dir=str(args.out / "runs" / name), overwrite=True)
    started = time.perf_counter()
    result = prune_classifier(config)
    return {"sparsity": sparsity, "scoring": scoring, "distill": distill, "accuracy": result.pruned_accuracy,
            "dense_accuracy": result.dense_accuracy, "params": result.sparsity["params"],
            "flops_sparsity": result.sparsity["flops_sparsity"], "seconds": time.perf_counter() - started}


def dense_teacher(args) -> tuple[str, float]:
    if args.teacher:
        return args.teacher, float("nan")
    from hfprune.training import FinetuneConfig, finetune_classifier

    result = finetune_classifier(FinetuneConfig(
        train_samples=args.train_samples, epochs=args.teacher_epochs, max_length=args.max_length, seed=args.seed,
        output_dir=str(args.out / "runs" / "dense"), overwrite=True))
    return result.output_dir, result.accuracy


def to_markdown(payload: dict) -> str:
    lines = [f"Command: `{payload['command']}`  ", f"Dense accuracy: {payload['dense_accuracy']:.4f}; "
             f"wall time {payload['wall_time_s']:.0f} s", "",
             "| sparsity (heads = FFN) | scorer | distillation | dev accuracy | vs dense | wall s |",
             "|---|---|---|---|---|---|"]
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
    teacher, dense_accuracy = dense_teacher(args)
    payload.setdefault("dense_accuracy", dense_accuracy)
    done = {row_key(r) for r in payload["rows"]}
    distill_settings = {"both": [False, True], "on": [True], "off": [False]}[args.distill]
    for sparsity in args.sparsities:
        for scoring in args.scorers:
            for distill in distill_settings:
                row = {"sparsity": sparsity, "scoring": scoring, "distill": distill}
                if row_key(row) in done:
                    continue
                row = run_cell(args, teacher, sparsity, scoring, distill)
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
