"""The per-example attack log: what was attacked, what it became, how the model labelled both, at what cost.

One :class:`AttackRecord` per sampled example, in TextAttack's vocabulary (successful / failed / skipped). The
summary metrics (:func:`hfprune.audit.summaries.summarize_attack_log`), the transfer replay and the CSV all read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hfprune.audit.metrics import ATTACK_OUTCOMES
from hfprune.audit.results import RobustnessResult
from hfprune.audit.summaries import summarize_attack_log
from hfprune.errors import ConfigError

# TextAttack result class -> outcome; looked up along the MRO so subclasses map like their parents
OUTCOME_BY_RESULT_CLASS: dict[str, str] = {
    "SuccessfulAttackResult": "successful",
    "FailedAttackResult": "failed",
    "SkippedAttackResult": "skipped",
}


@dataclass(frozen=True)
class AttackRecord:
    """One attacked example. ``perturbed`` equals ``original`` for skipped examples; labels are class ids."""

    index: int
    original: tuple[str, ...]
    perturbed: tuple[str, ...]
    ground_truth: int
    original_label: int
    perturbed_label: int
    outcome: str
    num_queries: int
    perturbed_word_pct: float

    def __post_init__(self) -> None:
        if self.outcome not in ATTACK_OUTCOMES:
            raise ConfigError(f"AttackRecord.outcome: expected one of {list(ATTACK_OUTCOMES)}, got {self.outcome!r}")
        if len(self.original) != len(self.perturbed):
            raise ConfigError("AttackRecord.perturbed: expected as many texts as original")
        object.__setattr__(self, "original", tuple(self.original))
        object.__setattr__(self, "perturbed", tuple(self.perturbed))


def outcome_of(result: Any) -> str:
    """"successful", "failed" or "skipped" for a TextAttack ``AttackResult`` (others, e.g. maximized, rejected)."""
    for cls in type(result).__mro__:
        if cls.__name__ in OUTCOME_BY_RESULT_CLASS:
            return OUTCOME_BY_RESULT_CLASS[cls.__name__]
    raise ConfigError(f"attack result: expected one of {sorted(OUTCOME_BY_RESULT_CLASS)}, got "
                      f"{type(result).__name__} (only untargeted classification attacks are supported)")


def perturbed_word_pct(original: Any, perturbed: Any) -> float:
    """Percentage of the original's words changed, as TextAttack's "Average perturbed word %" counts them."""
    n_words = len(original.words)
    return 100.0 * len(original.all_words_diff(perturbed)) / n_words if n_words else 0.0


def _texts(attacked_text: Any) -> tuple[str, ...]:
    """The texts of a TextAttack ``AttackedText`` (one per input column)."""
    value = attacked_text.tokenizer_input
    return (value,) if isinstance(value, str) else tuple(value)


def record_from_result(result: Any, index: int, ground_truth: int) -> AttackRecord:
    """An AttackRecord from a TextAttack ``AttackResult`` of the example at dataset row ``index``."""
    original = result.original_result.attacked_text
    perturbed = result.perturbed_result.attacked_text
    return AttackRecord(
        index=int(index),
        original=_texts(original),
        perturbed=_texts(perturbed),
        ground_truth=int(ground_truth),
        original_label=int(result.original_result.output),
        perturbed_label=int(result.perturbed_result.output),
        outcome=outcome_of(result),
        num_queries=int(result.num_queries),
        perturbed_word_pct=float(perturbed_word_pct(original, perturbed)),
    )


@dataclass
class AttackLog:
    """Every record of one recipe against one model on one sample, with what is needed to compare runs."""

    model_name: str
    sparsity: float
    recipe: str
    columns: tuple[str, ...]
    sample_fingerprint: str
    seed: int
    query_budget: int | None
    records: list[AttackRecord] = field(default_factory=list)
    seconds: float = math.nan

    def __post_init__(self) -> None:
        self.columns = tuple(self.columns)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.records]

    @property
    def queries(self) -> np.ndarray:
        return np.array([r.num_queries for r in self.records], dtype=float)

    @property
    def perturbed_word_pcts(self) -> np.ndarray:
        return np.array([r.perturbed_word_pct for r in self.records], dtype=float)

    def successful(self) -> list[AttackRecord]:
        """The records whose attack flipped the prediction: the adversarial examples."""
        return [r for r in self.records if r.outcome == "successful"]

    def summarize(self, n_resamples: int = 1000, confidence: float = 0.95) -> RobustnessResult:
        """Clean accuracy, accuracy under attack, success rate, perturbed words and queries, with bootstrap CIs."""
        if not self.records:
            raise ConfigError(f"AttackLog {self.model_name}/{self.recipe}: expected at least one record")
        return summarize_attack_log(
            self.outcomes, self.perturbed_word_pcts, self.queries, model_name=self.model_name,
            sparsity=self.sparsity, recipe=self.recipe, query_budget=self.query_budget, n_resamples=n_resamples,
            confidence=confidence, seed=self.seed,
        )

    def csv_rows(self) -> list[dict[str, Any]]:
        """One flat row per record for the CSV: texts as ``original``/``perturbed`` (``_<column>`` for pairs)."""
        rows = []
        for record in self.records:
            row: dict[str, Any] = {"model": self.model_name, "sparsity": self.sparsity, "recipe": self.recipe,
                                   "index": record.index}
            row.update(_text_cells("original", self.columns, record.original))
            row.update(_text_cells("perturbed", self.columns, record.perturbed))
            row.update({name: getattr(record, name) for name in (
                "ground_truth", "original_label", "perturbed_label", "outcome", "num_queries", "perturbed_word_pct")})
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: records as lists of mappings, NaN seconds as null."""
        payload = asdict(self)
        payload["columns"] = list(self.columns)
        payload["records"] = [{**asdict(r), "original": list(r.original), "perturbed": list(r.perturbed)}
                              for r in self.records]
        payload["seconds"] = None if math.isnan(self.seconds) else self.seconds
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> AttackLog:
        payload = dict(payload)
        records = [AttackRecord(**{**r, "original": tuple(r["original"]), "perturbed": tuple(r["perturbed"])})
                   for r in payload.pop("records", [])]
        seconds = payload.pop("seconds", None)
        return cls(**payload, records=records, seconds=math.nan if seconds is None else seconds)


def _text_cells(prefix: str, columns: Sequence[str], texts: Sequence[str]) -> dict[str, str]:
    if len(columns) == 1:
        return {prefix: texts[0]}
    return {f"{prefix}_{column}": text for column, text in zip(columns, texts, strict=True)}
