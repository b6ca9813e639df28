"""Run by torch.distributed.run in test_pruning_latency: a 2-process CPU (gloo) run to a latency target, each rank
with its own (empty) cache, so each would time its own table; each rank writes its table and final masks.

The timings are a made-up cost model read off the widths, three times slower on rank 1: real timings of a tiny model
are noise (a loaded machine made 1.1x "out of reach"), and a rank-dependent clock shows that the ranks share rank
0's table rather than each agreeing by chance on its own."""

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from conftest import tiny_model
from helpers import FakeTimer
from pruning_trainer_utils import synthetic_classification, training_args
from transformers import Trainer

import hfprune.utils.timing
from hfprune import MovementPruningCallback, PruningConfig


def main(out: Path) -> None:
    os.environ["HFPRUNE_CACHE_DIR"] = str(out / f"cache{os.environ['RANK']}")
    # measure_table looks the timer up when it runs
    hfprune.utils.timing.interleaved_timings = FakeTimer(scale=1.0 + 2.0 * int(os.environ["RANK"]))
    config = PruningConfig(latency_target=1.1, min_heads_per_layer=0, min_neurons_per_layer=0, latency_seq_len=12,
                           mask_update_interval=2, compact_on_train_end=False)
    callback = MovementPruningCallback(config)
    args = training_args(out / "run", max_steps=12, ddp_backend="gloo")
    trainer = Trainer(model=tiny_model("bert"), args=args, train_dataset=synthetic_classification(),
                      callbacks=[callback])
    trainer.train()
    pruner = callback.pruner
    payload = {"world_size": dist.get_world_size(), "table": pruner.latency.table.to_dict(),
               "masks": {k.value: [m.tolist() for m in v] for k, v in pruner.masks.items()}}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    # the Trainer formed the gloo group: leave it before the interpreter exits, as torch asks of a script (a
    # finished rank held in it can die of SIGABRT during teardown, seen here under load)
    dist.destroy_process_group()
