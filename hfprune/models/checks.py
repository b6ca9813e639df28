"""Checks of a model source that can fail, run before anything is trained or written: it is a model hfprune can
prune, it has a tokenizer, its weights are safetensors and finite, its classifier head fits the dataset's labels
and it accepts the requested input length.
Each error names the key the user set (``model.name``, ``teacher``...), the model and what was expected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hfprune.errors import ConfigError
from hfprune.models.trusted import safe_load_config


def check_model_source(key: str, name: str | os.PathLike, *, labels: list[str] | None = None,
                       max_length: int | None = None, length_key: str = "max_length") -> Any:
    """Load only the config of ``name`` and check it (see the module docstring); returns the config.

    ``labels``: the dataset's class names, when a classifier is trained; a checkpoint that already has a
    classification head must have as many. ``max_length``: the input length the run truncates to.
    """
    from hfprune.models import ModelNotFoundError, check_tokenizer_dir, max_positions, resolve_model

    where = os.fspath(name)
    resolved = resolve_model(where)
    try:
        config = safe_load_config(resolved, key)
    except ModelNotFoundError as exc:  # a recipe's model that cannot be read is a mistake in the recipe
        raise ConfigError(str(exc)) from None
    if Path(resolved).is_dir():
        check_tokenizer_dir(resolved, key)
        from hfprune.pruning.nonfinite import check_weight_files

        check_weight_files(key, Path(resolved))
    has_head = any(arch.endswith("ForSequenceClassification") for arch in getattr(config, "architectures", None) or [])
    if labels is not None and has_head and config.num_labels != len(labels):
        raise ConfigError(f"{key}: {where} is a classifier with {config.num_labels} labels but the dataset has "
                          f"{len(labels)} ({', '.join(labels)}); expected a model with {len(labels)} labels, or a "
                          "base model whose head is trained here")
    limit = max_positions(config)
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(f"{length_key}: expected at most {limit} (the longest input {where} accepts), got "
                          f"{max_length}")
    return config
