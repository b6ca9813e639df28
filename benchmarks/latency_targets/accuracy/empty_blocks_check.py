"""Why snip_momentum at latency target 2.0x with whole blocks allowed lands at chance: the SST-2 teacher (no
training) compacted to the widths that run chose, and to variants, on the first 200 dev sentences. With no attention
head in the last two layers the logits no longer depend on the input (their spread across sentences falls to ~1e-3):
the classifier reads the [CLS] token, and only the last layers' attention carries the sentence into it.

    cd benchmarks/latency_targets/accuracy && PYTHONPATH=../../.. python empty_blocks_check.py > empty_blocks_check.md
"""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hfprune.data import load_dataset
from hfprune.pruning.compaction import compact
from hfprune.pruning.units import UnitKind

TEACHER = "/work/bench/acc16/runs/dense"
WIDTHS = {  # heads per layer, FFN neurons per layer
    "latency target 2.0x, min 0/0 (snip_momentum, seed 0)": ([12, 10, 10, 6, 0, 0], [1514, 1412, 1394, 0, 0, 0]),
    "50/50 sparsity (snip_momentum, seed 0)": ([12, 10, 6, 3, 1, 4], [1524, 1490, 1017, 316, 238, 23]),
    "FFN emptied in layers 3-5 only": ([12] * 6, [1536, 1536, 1536, 0, 0, 0]),
    "attention emptied in layers 4-5 only": ([12, 12, 12, 12, 0, 0], [1536] * 6),
    "1 head in layers 4-5, all else dense": ([12, 12, 12, 12, 1, 1], [1536] * 6),
}


def first(kept: int, total: int) -> torch.Tensor:
    mask = torch.zeros(total)
    mask[:kept] = 1
    return mask


def main(n: int = 200) -> None:
    torch.set_num_threads(1)
    teacher = AutoModelForSequenceClassification.from_pretrained(TEACHER).eval()
    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    dev = load_dataset("glue/sst2", "validation")
    batch = tokenizer([dev[i]["sentence"] for i in range(n)], return_tensors="pt", padding=True, truncation=True,
                      max_length=64)
    labels = torch.tensor([dev[i]["label"] for i in range(n)])

    def row(name: str, model) -> str:
        with torch.no_grad():
            logits = model(**batch).logits
        accuracy = (logits.argmax(-1) == labels).float().mean().item()
        return f"| {name} | {accuracy:.3f} | {logits.std(0).max().item():.4f} |"

    print(f"First {n} SST-2 dev sentences, no training (teacher {TEACHER} compacted to the widths; heads kept first).")
    print("\n| model | accuracy | largest logit standard deviation across sentences |\n|---|---|---|")
    print(row("teacher", teacher))
    for name, (heads, neurons) in WIDTHS.items():
        model = copy.deepcopy(teacher)
        compact(model, {UnitKind.HEADS: [first(h, 12) for h in heads],
                        UnitKind.NEURONS: [first(f, 1536) for f in neurons]})
        print(row(name, model))


if __name__ == "__main__":
    main()
