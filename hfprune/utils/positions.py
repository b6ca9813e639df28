"""How many tokens a model accepts, from its config alone (no model, no transformers import): used by the latency
timing in the engine, the audits' input truncation and the recipe checks alike."""

from __future__ import annotations

from typing import Any


def max_positions(config: Any) -> int | None:
    """The longest input (in tokens) a model of ``config`` accepts, or None when the config does not say.

    RoBERTa-style position ids start after the padding index, so ``pad_token_id + 1`` positions are unusable.
    """
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit
