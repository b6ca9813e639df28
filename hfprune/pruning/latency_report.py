"""Predicted against measured latency of a latency-targeted model (issue #21).

The table a pruning run used travels with the model: compaction remembers it (``LATENCY_TABLES``), ``save_pruned``
writes it as ``latency_table.json`` beside the weights with the prediction for the saved widths, and ``load_pruned``
reads it back. ``latency_report`` gives the predicted speedup and, given the dense model, the measured one on the
table's own setting (batch size, sequence length, threads), timed interleaved (``hfprune.pruning.latency``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.latency_budget import LATENCY_TABLES
from hfprune.pruning.latency_table import TABLE_FILE_NAME, LatencyTable
from hfprune.pruning.units import UnitKind, unit_groups
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.pruning.latency import Latency

logger = get_logger(__name__)


@dataclass(frozen=True)
class LatencyReport:
    """The table's prediction for a model's widths and, when measured, the interleaved measurement beside it."""

    predicted_ms: float
    predicted_dense_ms: float
    predicted_speedup: float
    batch_size: int
    seq_len: int
    threads: int
    measured: Latency | None = None
    """The interleaved measurement against the dense model (``hfprune.pruning.latency``), when asked for."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def widths(model: PreTrainedModel) -> tuple[list[int], list[int]]:
    """Per-layer head units (key/value groups for grouped-query attention) and FFN neurons, off the weights."""
    return ([g.num_units for g in unit_groups(model, UnitKind.HEADS, "group")],
            [g.num_units for g in unit_groups(model, UnitKind.NEURONS)])


def latency_report(model: PreTrainedModel, table: LatencyTable | None = None, dense: PreTrainedModel | None = None,
                   rounds: int = 20) -> LatencyReport:
    """Predicted speedup of ``model`` (compacted) from ``table`` (default: the one its pruning used); with ``dense``
    also the measured speedup, ``rounds`` interleaved forwards each on the table's setting."""
    table = table or LATENCY_TABLES.get(model)
    if table is None:
        raise HfpruneError("latency_report: this model has no latency table (it was not pruned to a latency target "
                           "in this process, nor loaded from a folder with latency_table.json); pass table=")
    predicted = table.predict(*widths(model))
    setting = table.setting
    report = {"predicted_ms": predicted, "predicted_dense_ms": table.dense_predicted_ms,
              "predicted_speedup": table.dense_predicted_ms / predicted, "batch_size": setting.get("batch_size", 1),
              "seq_len": setting.get("seq_len", 128), "threads": setting.get("threads", 1)}
    if dense is not None:
        from hfprune.pruning.latency import measure_latency

        previous = torch.get_num_threads()
        torch.set_num_threads(report["threads"])
        try:
            measured = measure_latency(dense, model, report["seq_len"], report["batch_size"], rounds)
        finally:
            torch.set_num_threads(previous)
        report["measured"] = measured
    result = LatencyReport(**report)
    logger.info("latency: predicted %.2fx (%.2f ms)", result.predicted_speedup, result.predicted_ms)
    return result


def save_latency_table(model: PreTrainedModel, folder: str | os.PathLike) -> Path | None:
    """Write the table ``model`` was pruned with, and its prediction for the model's widths, to
    ``folder/latency_table.json`` (atomically); nothing when the model has none."""
    from hfprune.utils.io import atomic_write_json

    table = LATENCY_TABLES.get(model)
    if table is None:
        return None
    path = Path(folder) / TABLE_FILE_NAME
    heads, neurons = widths(model)
    predicted = table.predict(heads, neurons)
    atomic_write_json(path, {**table.to_dict(), "prediction": {
        "heads": heads, "neurons": neurons, "predicted_ms": predicted,
        "predicted_speedup": table.dense_predicted_ms / predicted}})
    return path


def load_latency_table(model: PreTrainedModel, folder: str | os.PathLike) -> LatencyTable | None:
    """Read ``folder/latency_table.json`` (if there is one) and remember it as ``model``'s table."""
    path = Path(folder) / TABLE_FILE_NAME
    if not path.is_file():
        return None
    table = LatencyTable.load(path)
    LATENCY_TABLES[model] = table
    return table
