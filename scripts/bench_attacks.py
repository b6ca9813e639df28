"""How long TextAttack recipes take against MiniLM fine-tuned on SST-2, on this machine's CPU cores.

Attacks the same seeded sample of SST-2 dev sentences with each recipe (DeepWordBug and PWWS by default) through
hfprune.audit.robustness, timing each recipe's whole run (building the attack, e.g. loading WordNet, plus attacking)
and the attack loop alone. Without ``--model`` it fine-tunes MiniLM first (hfprune.training.finetune_classifier,
3,000 SST-2 training sentences), or reuses the model an earlier run saved in ``--model-dir``. Writes JSON, a
markdown table and the per-example attack log (CSV) to ``--out``.

    python scripts/bench_attacks.py --out benchmarks/attacks                       # 200 examples (tens of minutes)
    python scripts/bench_attacks.py --n-examples 5 --threads 1 --out /tmp/attacks  # smoke run
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from hfprune.audit.robustness import AuditConfig, run_attack
from hfprune.audit.robustness.report import rows_to_csv
from hfprune.training import FinetuneConfig, contains_model, finetune_classifier
from hfprune.utils.io import atomic_write_json, atomic_write_text

DEFAULT_MODEL_DIR = Path("runs/bench_attacks/minilm-sst2")


def prepare_model(args: argparse.Namespace) -> tuple[Path, dict]:
    """The model directory to attack, and how it was obtained (given, reused or fine-tuned now)."""
    if args.model is not None:
        return args.model, {"source": "given"}
    if contains_model(args.model_dir) and not args.retrain:
        return args.model_dir, {"source": "reused", **read_eval(args.model_dir)}
    result = finetune_classifier(FinetuneConfig(
        train_samples=args.train_samples, epochs=1.0, max_length=64, batch_size=32, seed=args.seed,
        threads=args.threads, output_dir=str(args.model_dir), overwrite=True))
    return args.model_dir, {"source": "fine-tuned", "train_samples": result.n_train, "accuracy": result.accuracy,
                            "train_seconds": round(result.train_seconds, 1)}


def read_eval(model_dir: Path) -> dict:
    path = model_dir / "eval_results.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {"accuracy": metrics.get("eval_accuracy"), "train_samples": metrics.get("n_train")}


def bench(args: argparse.Namespace) -> tuple[dict, list]:
    """Time each recipe on the same sample; returns the payload for JSON/markdown and the attack runs."""
    from transformers import AutoModelForSequenceClassification

    from hfprune.compat.textattack import import_textattack
    from hfprune.data import load_dataset
    from hfprune.models import load_tokenizer

    torch.set_num_threads(args.threads)
    model_dir, provenance = prepare_model(args)
    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    dataset = load_dataset("glue/sst2", split="validation")
    started = time.perf_counter()
    import_textattack()
    import_seconds = time.perf_counter() - started
    config = AuditConfig(recipes=args.recipes, n_examples=args.n_examples, query_budget=args.query_budget,
                         seed=args.seed, batch_size=args.batch_size, max_length=args.max_length, progress=True)
    rows, runs = [], []
    for recipe in args.recipes:
        started = time.perf_counter()
        run = run_attack(model, tokenizer, dataset, recipe, args.n_examples, args.query_budget, args.seed,
                         name="minilm-sst2", sparsity=0.0, config=config)
        wall = time.perf_counter() - started
        runs.append(run)
        summary = run.result
        rows.append({"recipe": recipe, "n_examples": len(run.log), "wall_seconds": round(wall, 2),
                     "attack_seconds": round(run.log.seconds, 2),
                     "seconds_per_example": round(run.log.seconds / len(run.log), 3),
                     "total_queries": int(run.log.queries.sum()), "result": summary.to_dict()})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "result"}), flush=True)
    return {"command": args.command, "threads": args.threads, "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "textattack": importlib.metadata.version("textattack"),
            "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
            "model": str(model_dir), "model_provenance": provenance, "dataset": "glue/sst2 validation",
            "n_examples": args.n_examples, "query_budget": args.query_budget, "seed": args.seed,
            "batch_size": args.batch_size, "max_length": args.max_length,
            "textattack_import_seconds": round(import_seconds, 2), "results": rows}, runs


def to_markdown(payload: dict) -> str:
    budget = "unlimited" if payload["query_budget"] is None else payload["query_budget"]
    accuracy = payload["model_provenance"].get("accuracy")
    lines = [
        f"Command: `{payload['command']}`", "",
        f"MiniLM fine-tuned on SST-2 ({payload['model_provenance']['source']}"
        + (f", dev accuracy {accuracy:.3f}" if accuracy is not None else "") + f"); {payload['n_examples']} SST-2 "
        f"dev examples (seed {payload['seed']}); query budget {budget}; {payload['threads']} torch thread(s) on "
        f"{payload['cpu_count']} cores; torch {payload['torch']}, textattack {payload['textattack']}; "
        f"importing textattack took {payload['textattack_import_seconds']:.1f} s (not included below).", "",
        "| recipe | examples | wall s (build + attack) | attack s | s / example | queries | success rate | "
        "acc under attack |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["results"]:
        result = row["result"]
        lines.append(
            f"| {row['recipe']} | {row['n_examples']} | {row['wall_seconds']:.1f} | {row['attack_seconds']:.1f} | "
            f"{row['seconds_per_example']:.2f} | {row['total_queries']} | "
            f"{fmt(result['attack_success_rate'])} | {fmt(result['accuracy_under_attack'])} |")
    return "\n".join(lines) + "\n"


def fmt(metric: dict) -> str:
    return "n/a" if metric["value"] is None else f"{metric['value']:.3f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fine-tuned SST-2 classifier directory (default: fine-tune)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="where the fine-tuned model is saved and reused from")
    parser.add_argument("--retrain", action="store_true", help="fine-tune again even if --model-dir holds a model")
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--recipes", nargs="+", default=["deepwordbug", "pwws"])
    parser.add_argument("--n-examples", type=int, default=200)
    parser.add_argument("--query-budget", type=lambda v: None if v.lower() == "none" else int(v), default=1000,
                        help="queries per example, or 'none' for unlimited")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/attacks"))
    args = parser.parse_args(argv)
    args.command = "python scripts/bench_attacks.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    started = time.perf_counter()
    payload, runs = bench(args)
    payload["total_wall_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(args.out / "attacks.json", payload)
    atomic_write_text(args.out / "attacks.md", to_markdown(payload))
    atomic_write_text(args.out / "attack_log.csv",
                      rows_to_csv([row for run in runs for row in run.log.csv_rows()]))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
