"""The pruning state of a Trainer checkpoint: the masks and scores of that checkpoint's own step.

Just before ``on_save`` the Trainer writes every ``ExportableState`` callback's ``state()`` into the checkpoint's
``trainer_state.json`` (main process only, by the Trainer's own writer), so each ``checkpoint-N`` folder already
holds the masks of step N beside its dense-shaped weights. These functions read them back, so that
``load_best_model_at_end``, a resume from any checkpoint, or a user opening a checkpoint folder gets that step's
masked model and no other (a second copy of the masks would only be a second thing to keep in sync).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from hfprune.errors import HfpruneError

TRAINER_STATE_NAME = "trainer_state.json"
CALLBACK_NAME = "MovementPruningCallback"


def callback_state(stateful_callbacks: dict[str, Any] | None, name: str = CALLBACK_NAME) -> dict[str, Any] | None:
    """The saved ``{"args": ..., "attributes": ...}`` of callback ``name`` in a TrainerState's ``stateful_callbacks``
    (the first one when several callbacks of that class were saved), or None."""
    stored = (stateful_callbacks or {}).get(name)
    if isinstance(stored, list):
        stored = stored[0] if stored else None
    return stored or None


def checkpoint_callback_state(checkpoint_dir: str | os.PathLike, name: str = CALLBACK_NAME) -> dict[str, Any]:
    """The pruning callback's state saved in ``checkpoint_dir``: its config (``args``) and the pruner's masks and
    scores at the checkpoint's step (``attributes.pruner_state``). A checkpoint without it is an error."""
    path = Path(checkpoint_dir) / TRAINER_STATE_NAME
    try:
        stateful = json.loads(path.read_text(encoding="utf-8")).get("stateful_callbacks")
    except FileNotFoundError:
        raise HfpruneError(f"{checkpoint_dir}: no {TRAINER_STATE_NAME}; not a Trainer checkpoint") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HfpruneError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    state = callback_state(stateful, name)
    if not ((state or {}).get("attributes") or {}).get("pruner_state"):
        raise HfpruneError(f"{path}: no pruning state of {name} (the checkpoint was saved by a run without the "
                           "pruning callback, or before it scored a step)")
    return state


def load_checkpoint_masked(checkpoint_dir: str | os.PathLike, compact: bool = True,
                           name: str = CALLBACK_NAME) -> PreTrainedModel:
    """The model of a pruning run's ``checkpoint-N`` folder with the masks of step N: its dense-shaped weights
    (``from_pretrained`` of the class in its config.json), the saved masks applied, and with ``compact`` the masked
    units sliced out and pruned weights zeroed, as the callback does at the end of training."""
    from hfprune.models import safe_model_kwargs
    from hfprune.models.trusted import model_class, safe_load_config
    from hfprune.pruning.config import PruningConfig
    from hfprune.pruning.pruner import StructuredPruner

    state = checkpoint_callback_state(checkpoint_dir, name)
    config = PruningConfig.from_dict(state["args"]["config"])
    model_config = safe_load_config(checkpoint_dir, "checkpoint")
    model_cls = model_class(model_config)
    model = model_cls.from_pretrained(checkpoint_dir, **safe_model_kwargs({"config": model_config})).eval()
    pruner = StructuredPruner.from_state(model, config, state["attributes"]["pruner_state"])
    if compact:
        pruner.compact()
    return model

