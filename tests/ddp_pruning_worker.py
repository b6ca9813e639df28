"""Run by torch.distributed.run in test_pruning_callback (and test_pruning_layers): a 2-process CPU (gloo) pruning run
with the scorer, architecture and layer sparsity named by the arguments; each rank writes its final masks and scores
(and its layer mask)."""

import json
import sys
from pathlib import Path

import torch.distributed as dist
from conftest import tiny_model
from pruning_trainer_utils import synthetic_classification, training_args
from transformers import Trainer

from hfprune import MovementPruningCallback, PruningConfig


def main(out: Path, scoring: str = "movement", arch: str = "bert", layer_sparsity: str = "0") -> None:
    config = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2, compact_on_train_end=False,
                           scoring=scoring, regularization=0.1, layer_sparsity=float(layer_sparsity))
    callback = MovementPruningCallback(config)
    args = training_args(out / "run", max_steps=12, ddp_backend="gloo")
    trainer = Trainer(model=tiny_model(arch), args=args, train_dataset=synthetic_classification(),
                      callbacks=[callback])
    trainer.train()
    pruner = callback.pruner
    payload = {"world_size": dist.get_world_size(),
               "masks": {k.value: [m.tolist() for m in v] for k, v in pruner.masks.items()},
               "scores": {k.value: [s.tolist() for s in v] for k, v in pruner.scores.items()},
               "layers": None if pruner.layers is None else pruner.layers.state_dict()}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
    # the Trainer formed the gloo group: leave it before the interpreter exits, as torch asks of a script (a
    # finished rank held in it can die of SIGABRT during teardown, seen here under load)
    dist.destroy_process_group()
