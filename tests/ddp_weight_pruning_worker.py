"""Run by torch.distributed.run in test_pruning_weights: a 2-process CPU (gloo) run with head, FFN and weight
pruning; each rank writes its final weight masks."""

import json
import sys
from pathlib import Path

import torch.distributed as dist
from conftest import tiny_model
from pruning_trainer_utils import synthetic_classification, training_args
from transformers import Trainer

from hfprune import MovementPruningCallback, PruningConfig
from hfprune.pruning.weight.encoding import encode_mask


def main(out: Path) -> None:
    config = PruningConfig(head_sparsity=0.5, weight_sparsity=0.5, weight_method="soft_movement",
                           mask_update_interval=2, compact_on_train_end=False)
    callback = MovementPruningCallback(config)
    args = training_args(out / "run", max_steps=8, ddp_backend="gloo")
    trainer = Trainer(model=tiny_model("bert"), args=args, train_dataset=synthetic_classification(),
                      callbacks=[callback])
    trainer.train()
    weights = callback.pruner.weights
    kept, total = weights.counts()
    payload = {"world_size": dist.get_world_size(), "masks": [encode_mask(m) for m in weights.masks],
               "kept": kept, "total": total}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    # the Trainer formed the gloo group: leave it before the interpreter exits, as torch asks of a script (a
    # finished rank held in it can die of SIGABRT during teardown, seen here under load)
    dist.destroy_process_group()
