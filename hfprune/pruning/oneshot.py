"""One-shot post-training pruning: score on a calibration set, remove units, compact. No training loop needed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from transformers import PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.latency_table import LatencyTable
from hfprune.pruning.pruner import StructuredPruner
from hfprune.pruning.structure import PrunedStructure


def prune(
    model: PreTrainedModel,
    config: PruningConfig,
    dataloader: Iterable[Mapping[str, torch.Tensor]] | None = None,
    max_batches: int | None = None,
    latency_table: LatencyTable | None = None,
) -> PrunedStructure:
    """Prune ``model`` in place to ``config``'s final sparsities and compact it.

    Gradient-based scores (movement, head_importance, movement weight methods) are accumulated over the calibration
    batches, one backward pass per batch; the batches must carry labels so the model returns a loss. Magnitude and
    random scores need no data. Weight masks are applied: pruned weights are zeroed. With a latency target,
    ``latency_table`` replaces the cached / measured table of the config's setting.
    """
    pruner = StructuredPruner(model, config, latency_table)
    if pruner.needs_data:
        if dataloader is None:
            raise HfpruneError(f"prune: scoring {config.scoring!r} / weight_method {config.weight_method!r} / "
                               f"layer_sparsity {config.layer_sparsity!r} needs a calibration dataloader")
        _accumulate(model, pruner, dataloader, max_batches)
    pruner.update_masks(step=1, total_steps=1)
    return pruner.compact()


def _accumulate(model: PreTrainedModel, pruner: StructuredPruner, dataloader, max_batches: int | None) -> None:
    was_training = model.training
    model.eval()  # no dropout: scores reflect the model as it will be used
    device = next(model.parameters()).device
    try:
        for index, batch in enumerate(dataloader):
            if max_batches is not None and index >= max_batches:
                break
            outputs = model(**{k: v.to(device) for k, v in batch.items()})
            if outputs.loss is None:
                raise HfpruneError("prune: calibration batches must include labels so that the model returns a loss")
            outputs.loss.backward()
            pruner.accumulate_scores()
            model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
