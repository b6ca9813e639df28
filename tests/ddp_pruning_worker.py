"""Run by torch.distributed.run in test_pruning_callback: a 2-process CPU (gloo) pruning run with the scorer named
by the second argument; each rank writes its final masks and scores."""

import json
import sys
from pathlib import Path

import torch.distributed as dist
from conftest import tiny_model
from pruning_trainer_utils import synthetic_classification, training_args
from transformers import Trainer

from hfprune import MovementPruningCallback, PruningConfig


def main(out: Path, scoring: str = "movement", arch: str = "bert") -> None:
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2, compact_on_train_end=False,
                           scoring=scoring, regularization=0.1)
    callback = MovementPruningCallback(config)
    args = training_args(out / "run", max_steps=12, ddp_backend="gloo")
    trainer = Trainer(model=tiny_model(arch), args=args, train_dataset=synthetic_classification(),
                      callbacks=[callback])
    trainer.train()
    pruner = callback.pruner
    payload = {"world_size": dist.get_world_size(),
               "masks": {k.value: [m.tolist() for m in v] for k, v in pruner.masks.items()},
               "scores": {k.value: [s.tolist() for s in v] for k, v in pruner.scores.items()}}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
