"""The seeded sample of labelled inputs that every model of an audit is attacked (or compared) on.

Drawn once per seed and reused for every model: a difference between two models' attack results must not come
from attacking different sentences. The fingerprint (a hash of indices, texts and labels) lets reports and tests
check that two runs saw the same examples.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hfprune.audit.robustness.wrapper import TextInput
from hfprune.errors import ConfigError, DataError
from hfprune.utils.config import check_int
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets

logger = get_logger(__name__)

DEFAULT_COLUMN = "text"


@dataclass(frozen=True)
class AttackSample:
    """Labelled inputs with their row indices in the source dataset; ``columns`` names the text fields."""

    indices: tuple[int, ...]
    inputs: tuple[tuple[str, ...], ...]
    labels: tuple[int, ...]
    columns: tuple[str, ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.indices:
            raise ConfigError("AttackSample: expected at least one example")
        if not len(self.indices) == len(self.inputs) == len(self.labels):
            raise ConfigError(f"AttackSample: expected as many inputs ({len(self.inputs)}) and labels "
                              f"({len(self.labels)}) as indices ({len(self.indices)})")
        if any(len(row) != len(self.columns) for row in self.inputs):
            raise ConfigError(f"AttackSample.inputs: expected {len(self.columns)} text(s) per example "
                              f"(columns {list(self.columns)})")

    def __len__(self) -> int:
        return len(self.indices)

    def model_inputs(self) -> list[TextInput]:
        """What a ClassifierPredictor takes: a string per example, or a tuple for pair tasks."""
        return [row[0] if len(row) == 1 else row for row in self.inputs]

    def textattack_input(self, position: int) -> str | OrderedDict[str, str]:
        """Example ``position`` as ``Attack.attack`` takes it: a string, or column -> text for pair tasks."""
        row = self.inputs[position]
        return row[0] if len(row) == 1 else OrderedDict(zip(self.columns, row, strict=True))

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of indices, texts and labels: equal fingerprints, equal samples."""
        payload = json.dumps([self.indices, self.inputs, self.labels, self.columns], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Indices and fingerprint (texts live in the attack log): enough to redraw and check the sample."""
        return {"n_examples": len(self), "seed": self.seed, "columns": list(self.columns),
                "indices": list(self.indices), "fingerprint": self.fingerprint()}


def draw_sample(
    dataset: datasets.Dataset | Sequence[tuple[TextInput, int]],
    n_examples: int | None,
    seed: int,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> AttackSample:
    """``n_examples`` rows drawn without replacement by a seeded permutation (None: every row, in order).

    ``dataset`` is a ``datasets.Dataset`` (text columns inferred unless given; rows with a negative label, GLUE's
    unlabelled marker, are left out) or a sequence of ``(text or text pair, label)`` tuples. Asking for more rows
    than there are takes them all, with a warning.
    """
    check_int("draw_sample", "seed", seed, minimum=0)
    if n_examples is not None:
        check_int("draw_sample", "n_examples", n_examples, minimum=1)
    indices, inputs, labels, columns = _rows(dataset, text_columns, label_column)
    if not indices:
        raise DataError("dataset: expected at least one labelled row, found none")
    if n_examples is None:
        chosen = np.arange(len(indices))
    else:
        if n_examples > len(indices):
            logger.warning("n_examples=%d but the dataset has %d labelled rows: using all of them",
                           n_examples, len(indices))
        chosen = np.random.default_rng(seed).permutation(len(indices))[:n_examples]
    return AttackSample(
        indices=tuple(int(indices[i]) for i in chosen), inputs=tuple(inputs[i] for i in chosen),
        labels=tuple(int(labels[i]) for i in chosen), columns=columns, seed=seed,
    )


def _rows(
    dataset: Any, text_columns: Sequence[str] | None, label_column: str
) -> tuple[list[int], list[tuple[str, ...]], list[int], tuple[str, ...]]:
    """(row indices, inputs as tuples, labels, column names) of the labelled rows."""
    if hasattr(dataset, "column_names") and hasattr(dataset, "features"):
        return _dataset_rows(dataset, text_columns, label_column)
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Sequence):
        raise ConfigError(f"dataset: expected a datasets.Dataset or a sequence of (text, label) pairs, "
                          f"got {type(dataset).__name__}")
    inputs, labels = [], []
    for position, row in enumerate(dataset):
        if not isinstance(row, (tuple, list)) or len(row) != 2 or isinstance(row[1], bool) or not isinstance(
            row[1], (int, np.integer)
        ):
            raise ConfigError(f"dataset[{position}]: expected a (text, integer label) pair, got {row!r}")
        inputs.append((row[0],) if isinstance(row[0], str) else tuple(row[0]))
        labels.append(int(row[1]))
    width = {len(r) for r in inputs}
    if len(width) > 1 or not all(isinstance(t, str) for r in inputs for t in r):
        raise ConfigError("dataset: expected every input to be a text, or every input a tuple of texts")
    columns = tuple(text_columns) if text_columns else (
        (DEFAULT_COLUMN,) if width == {1} else tuple(f"text{i}" for i in range(width.pop())))
    keep = [i for i, label in enumerate(labels) if label >= 0]
    return keep, [inputs[i] for i in keep], [labels[i] for i in keep], columns


def _dataset_rows(
    dataset: datasets.Dataset, text_columns: Sequence[str] | None, label_column: str
) -> tuple[list[int], list[tuple[str, ...]], list[int], tuple[str, ...]]:
    from hfprune.data.columns import text_columns as infer_columns

    columns = list(text_columns) if text_columns else list(infer_columns(dataset, label_column))
    missing = [c for c in [*columns, label_column] if c not in dataset.column_names]
    if missing:
        raise DataError(f"dataset columns {dataset.column_names}: missing {missing}")
    labels = [int(v) for v in dataset[label_column]]
    keep = [i for i, label in enumerate(labels) if label >= 0]
    texts = [dataset[c] for c in columns]
    return (keep, [tuple(col[i] for col in texts) for i in keep], [labels[i] for i in keep], tuple(columns))
