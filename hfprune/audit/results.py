"""Typed audit results that reports, plots and model cards consume (:mod:`hfprune.audit.summaries` fills them from
raw logs).

Each result is a dataclass with a JSON-safe ``to_dict`` (plain Python types, NaN written as null, a ``kind`` tag)
and a ``from_dict`` that rejects unknown keys; :func:`result_from_dict` dispatches on ``kind`` and
:func:`results_to_markdown` renders any mix of results as one table, model and sparsity first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np

from hfprune.audit import intervals
from hfprune.errors import ConfigError
from hfprune.utils.config import reject_unknown_keys

EXPOSURE_METHODS = ("exact", "skewnorm")
BCA = "BCa bootstrap"
STUDENTIZED = "studentized bootstrap"
# the false-positive rates a membership result reports a TPR at -> its field
TPR_FIELDS = {0.01: "tpr_at_1pct_fpr", 0.001: "tpr_at_0_1pct_fpr"}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to Python numbers and lists, so results always serialise as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _json_float(value: float | None) -> float | None:
    """NaN and None both become null: strict JSON has no NaN."""
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class MetricWithCI:
    """A point estimate, its confidence interval [low, high] when known, the n behind it and the interval method.

    ``method`` names how the interval was made ("Clopper-Pearson", "Wilson", "BCa bootstrap"); ``n`` is the number
    of examples (or canaries) the value rests on, the denominator for a proportion.
    """

    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        # frozen: coerce numpy scalars (and None value read back from JSON) through object.__setattr__
        object.__setattr__(self, "value", math.nan if self.value is None else float(self.value))
        object.__setattr__(self, "low", _float_or_none(self.low))
        object.__setattr__(self, "high", _float_or_none(self.high))
        object.__setattr__(self, "n", None if self.n is None else int(self.n))
        if (self.low is None) != (self.high is None):
            raise ConfigError(f"MetricWithCI: expected both low and high or neither, got {self.low}, {self.high}")

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None and not (math.isnan(self.low) or math.isnan(self.high))

    def format(self, digits: int = 3) -> str:
        """"0.873 [0.851, 0.894]", or "0.873" without an interval, or "n/a" when undefined."""
        if math.isnan(self.value):
            return "n/a"
        text = f"{self.value:.{digits}f}"
        if not self.has_interval:
            return text
        return f"{text} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json_float(self.value), "low": _json_float(self.low), "high": _json_float(self.high),
                "n": self.n, "method": self.method}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        allowed = {"value", "low", "high", "n", "method"}
        if not isinstance(payload, dict) or not set(payload) <= allowed or "value" not in payload:
            raise ConfigError(f"MetricWithCI: expected a mapping with keys from {sorted(allowed)}; got {payload!r}")
        return cls(**payload)


class _Result:
    """Serialisation and markdown rows shared by the result dataclasses."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            payload[field.name] = value.to_dict() if isinstance(value, MetricWithCI) else _plain(value)
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        """Build from :meth:`to_dict` output; unknown keys or a different ``kind`` are an error."""
        if not isinstance(payload, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(payload).__name__}")
        payload = dict(payload)
        kind = payload.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ConfigError(f"{cls.__name__}: expected kind {cls.kind!r}, got {kind!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        reject_unknown_keys(cls.__name__, payload, fields)
        for name, value in payload.items():
            if fields[name].type == "MetricWithCI":  # annotations are strings under `from __future__`
                payload[name] = MetricWithCI.from_dict(value)
        return cls(**payload)

    def markdown_cells(self) -> dict[str, str]:
        """Column name -> cell text for :func:`results_to_markdown`; model and sparsity come first."""
        raise NotImplementedError

    def _identity_cells(self) -> dict[str, str]:
        return {"model": str(self.model_name), "sparsity": f"{100 * self.sparsity:.3g}%"}  # type: ignore[attr-defined]


@dataclass
class RobustnessResult(_Result):
    """A TextAttack run against one model: accuracies, success rate and attack cost (fractions; word % in 0-100)."""

    kind: ClassVar[str] = "robustness"

    model_name: str
    sparsity: float
    recipe: str
    n_examples: int
    clean_accuracy: MetricWithCI
    accuracy_under_attack: MetricWithCI
    attack_success_rate: MetricWithCI
    mean_perturbed_word_pct: MetricWithCI
    mean_queries: MetricWithCI
    query_budget: int | None = None
    seed: int | None = None
    outcomes: list[str] | None = None  # per example, in sample order: the paired tests compare models on them

    def markdown_cells(self) -> dict[str, str]:
        return {
            **self._identity_cells(),
            "recipe": self.recipe,
            "n": str(self.n_examples),
            "clean acc": self.clean_accuracy.format(),
            "acc under attack": self.accuracy_under_attack.format(),
            "success rate": self.attack_success_rate.format(),
            "perturbed words %": self.mean_perturbed_word_pct.format(1),
            "queries": self.mean_queries.format(1),
        }


@dataclass
class LoyaltyResult(_Result):
    """How closely a pruned model follows its reference (usually the dense teacher), after Xu et al. 2021."""

    kind: ClassVar[str] = "loyalty"

    model_name: str
    sparsity: float
    reference_name: str
    n_examples: int
    label_loyalty: MetricWithCI
    probability_loyalty: MetricWithCI
    seed: int | None = None

    def markdown_cells(self) -> dict[str, str]:
        return {
            **self._identity_cells(),
            "reference": self.reference_name,
            "n": str(self.n_examples),
            "label loyalty": self.label_loyalty.format(),
            "probability loyalty (1 - JS distance, natural log)": self.probability_loyalty.format(),
        }


@dataclass
class MembershipInferenceResult(_Result):
    """One membership-inference attack against one model; ``roc_fpr``/``roc_tpr`` keep the curve for plots."""

    kind: ClassVar[str] = "membership_inference"

    model_name: str
    sparsity: float
    attack: str
    n_members: int
    n_nonmembers: int
    auc: MetricWithCI
    balanced_accuracy: MetricWithCI
    tpr_at_1pct_fpr: MetricWithCI
    tpr_at_0_1pct_fpr: MetricWithCI
    roc_fpr: list[float] | None = None
    roc_tpr: list[float] | None = None
    seed: int | None = None
    scores: list[float] | None = None  # per example, in split order: the paired tests compare models on them
    is_member: list[bool] | None = None

    def __post_init__(self) -> None:
        if (self.roc_fpr is None) != (self.roc_tpr is None):
            raise ConfigError("MembershipInferenceResult: expected both roc_fpr and roc_tpr or neither")
        if self.roc_fpr is not None and len(self.roc_fpr) != len(self.roc_tpr):  # type: ignore[arg-type]
            raise ConfigError("MembershipInferenceResult.roc_tpr: expected as many points as roc_fpr")

    def markdown_cells(self) -> dict[str, str]:
        return {
            **self._identity_cells(),
            "attack": self.attack,
            "members / non-members": f"{self.n_members} / {self.n_nonmembers}",
            "AUC": self.auc.format(),
            "balanced acc": self.balanced_accuracy.format(),
            "TPR@1% FPR": self.tpr_cell(0.01),
            "TPR@0.1% FPR": self.tpr_cell(0.001),
        }

    def tpr_cell(self, fpr: float) -> str:
        """The TPR at ``fpr`` with its interval, or, when the non-members cannot resolve ``fpr``, what it needs."""
        if not intervals.fpr_resolved(fpr, self.n_nonmembers):
            return (f"unresolved: needs {intervals.nonmembers_needed(fpr)} non-members (FPR >= "
                    f"{intervals.smallest_resolved_fpr(self.n_nonmembers):.2%} resolved)")
        return getattr(self, TPR_FIELDS[fpr]).format()


@dataclass
class CanaryExposureResult(_Result):
    """Exposure of canaries inserted ``repetitions`` times (Carlini et al. 2019); one result per repetition count."""

    kind: ClassVar[str] = "canary_exposure"

    model_name: str
    sparsity: float
    repetitions: int
    n_canaries: int
    space_size: int
    mean_exposure: MetricWithCI
    max_exposure: float
    method: Literal["exact", "skewnorm"]
    seed: int | None = None
    exposures: list[float] | None = None  # per canary, in canary order: the paired test compares models on them

    def __post_init__(self) -> None:
        if self.method not in EXPOSURE_METHODS:
            raise ConfigError(f"CanaryExposureResult.method: expected one of {list(EXPOSURE_METHODS)}, "
                              f"got {self.method!r}")

    def markdown_cells(self) -> dict[str, str]:
        return {
            **self._identity_cells(),
            "repetitions": str(self.repetitions),
            "canaries": str(self.n_canaries),
            "log2 |R|": f"{math.log2(self.space_size):.1f}",
            "mean exposure": self.exposure_cell(),
            "max exposure": f"{self.max_exposure:.2f}",
            "method": self.method,
        }


    def exposure_cell(self) -> str:
        """The mean with its interval, or, below MIN_EXPOSURE_INTERVAL_N canaries, every value and no interval."""
        if self.n_canaries < intervals.MIN_EXPOSURE_INTERVAL_N and self.exposures:
            listed = ", ".join(f"{value:.2f}" for value in self.exposures)
            return f"{self.mean_exposure.format(2)} (values {listed}; too few canaries for an interval)"
        return self.mean_exposure.format(2)


AuditResult = RobustnessResult | LoyaltyResult | MembershipInferenceResult | CanaryExposureResult
_RESULT_TYPES: dict[str, type[_Result]] = {
    cls.kind: cls for cls in (RobustnessResult, LoyaltyResult, MembershipInferenceResult, CanaryExposureResult)
}


def result_from_dict(payload: dict[str, Any]) -> AuditResult:
    """Rebuild any result from its ``to_dict`` output, choosing the class by its ``kind``."""
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind not in _RESULT_TYPES:
        raise ConfigError(f"kind: expected one of {sorted(_RESULT_TYPES)}, got {kind!r}")
    return _RESULT_TYPES[kind].from_dict(payload)  # type: ignore[return-value]


def results_to_markdown(results: Sequence[AuditResult]) -> str:
    """A GitHub markdown table, one row per result; columns are the union over results, blank where absent."""
    if not results:
        raise ConfigError("results: expected at least one result")
    rows = [result.markdown_cells() for result in results]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    lines = [_markdown_line(columns), _markdown_line(["---"] * len(columns))]
    lines += [_markdown_line([row.get(name, "") for name in columns]) for row in rows]
    return "\n".join(lines) + "\n"


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
