"""What ``audits.privacy.shadows`` costs: one ``hfprune run`` of a recipe without shadows, with ``n_shadows``
dense shadows and with ``n_shadows`` target shadows (pruned and distilled like the level), each in its own folder,
robustness attacks and latency off (they do not depend on the shadows). Prints the stage times from each stage's
``stage.json`` and the wall time.

    python scripts/bench_shadows.py --model PATH_OR_NAME --out /tmp/bench-shadows [--train-samples N ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hfprune.pipeline.runner import run_recipe
from hfprune.recipes.loading import load_recipe
from hfprune.recipes.schema import Recipe

MODES = {"none": {}, "dense": {"shadows": "dense"}, "target": {"shadows": "target"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="recipes/minilm-sst2-offline.yaml")
    parser.add_argument("--model", default=None, help="replace model.name (e.g. a tiny model directory)")
    parser.add_argument("--train-samples", type=int, default=None)
    parser.add_argument("--n-nonmembers", type=int, default=None)
    parser.add_argument("--eval-samples", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=None, help="dense and pruning epochs")
    parser.add_argument("--n-shadows", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    base = load_recipe(args.recipe).to_dict()
    base["audits"]["robustness"]["enabled"] = False
    base["audits"]["latency_rounds"] = 0
    base["training"]["threads"] = args.threads
    for section, key, value in (("model", "name", args.model), ("data", "train_samples", args.train_samples),
                                ("data", "eval_samples", args.eval_samples),
                                ("training", "dense_epochs", args.epochs), ("training", "prune_epochs", args.epochs)):
        if value is not None:
            base[section][key] = value
    if args.n_nonmembers is not None:
        base["audits"]["privacy"]["n_nonmembers"] = args.n_nonmembers
    print(f"{'shadows':8} | dense: training / shadows / audit s | pruned: training / shadows / audit s | wall s")
    for mode, privacy in MODES.items():
        payload = json.loads(json.dumps(base))
        if privacy:
            payload["audits"]["privacy"].update(privacy, n_shadows=args.n_shadows,
                                                attacks=["loss", "confidence", "entropy", "reference", "lira"])
        payload["output"]["dir"] = str(Path(args.out) / mode)
        recipe = Recipe.from_dict(payload)
        started = time.perf_counter()
        dense, (pruned,) = run_recipe(recipe)
        wall = time.perf_counter() - started

        def cells(stage) -> str:
            return " / ".join(f"{stage.seconds.get(k, 0):.0f}" for k in ("training", "shadows", "audit"))

        aucs = {r["attack"]: round(r["auc"]["value"], 3) for r in pruned.audit["privacy"]["membership"]}
        print(f"{mode:8} | {cells(dense)} | {cells(pruned)} | {wall:.0f} | pruned AUC {aucs}", flush=True)


if __name__ == "__main__":
    main()
