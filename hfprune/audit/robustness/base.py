"""What an audit examines (``AuditTarget``: a named model) and the base every probe shares.

A probe (an attack, the loyalty comparison, the transfer replay) is configured when built and then called on one
target and the audit's sample. The public ``__call__`` validates both, so no subclass repeats those checks; the
subclass implements only ``_run`` (TextAttack's pattern of a public method around a ``_method``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from hfprune.audit.robustness.sample import AttackSample
from hfprune.audit.robustness.wrapper import ClassifierPredictor
from hfprune.audit.sparsity import measure_sparsity
from hfprune.errors import ConfigError
from hfprune.utils.config import check_fraction

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

ResultT = TypeVar("ResultT")


@dataclass
class AuditTarget:
    """A model under audit: a display name, the classifier (dense, masked or compacted) and its tokenizer.

    ``sparsity`` is the fraction removed as the report should show it; None measures it with
    :func:`hfprune.sparsity_report` (see ``AuditConfig.sparsity_measure``).
    """

    name: str
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    sparsity: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"AuditTarget.name: expected a non-empty string, got {self.name!r}")
        if not callable(self.model) or not hasattr(self.model, "parameters"):
            raise ConfigError(f"AuditTarget.model ({self.name}): expected a torch nn.Module classifier, "
                              f"got {type(self.model).__name__}")
        if not callable(self.tokenizer):
            raise ConfigError(f"AuditTarget.tokenizer ({self.name}): expected a callable tokenizer, "
                              f"got {type(self.tokenizer).__name__}")
        if self.sparsity is not None:
            check_fraction("AuditTarget", "sparsity", self.sparsity, allow_one=True)

    @property
    def num_labels(self) -> int | None:
        return getattr(getattr(self.model, "config", None), "num_labels", None)

    def measured_sparsity(self, measure: str = "params") -> float:
        """``sparsity`` when given, else the ``measure`` of :func:`hfprune.sparsity_report` for this model."""
        if self.sparsity is not None:
            return float(self.sparsity)
        return measure_sparsity(self.model, measure, self.name, "AuditTarget.sparsity")

    def predictor(self, batch_size: int = 32, max_length: int = 128) -> ClassifierPredictor:
        return ClassifierPredictor(self.model, self.tokenizer, batch_size=batch_size, max_length=max_length)


class Probe(ABC, Generic[ResultT]):
    """Measures one thing about one target on a sample. Subclasses implement ``_run``; call the instance."""

    kind: ClassVar[str] = "probe"

    def __call__(self, target: AuditTarget, sample: AttackSample) -> ResultT:
        """Validate ``target`` and ``sample``, then run the probe."""
        if not isinstance(target, AuditTarget):
            raise ConfigError(f"{self.kind}: expected an AuditTarget, got {type(target).__name__}")
        if not isinstance(sample, AttackSample):
            raise ConfigError(f"{self.kind}: expected an AttackSample (see draw_sample), got {type(sample).__name__}")
        self._check_labels(target, sample)
        self._validate(target, sample)
        return self._run(target, sample)

    @staticmethod
    def _check_labels(target: AuditTarget, sample: AttackSample) -> None:
        """Every gold label must be a class of the target's classifier."""
        n_labels = target.num_labels
        bad = sorted({label for label in sample.labels if label < 0 or (n_labels is not None and label >= n_labels)})
        if bad:
            raise ConfigError(f"sample labels {bad}: expected class ids in [0, {n_labels}) of model {target.name!r}")

    def _validate(self, target: AuditTarget, sample: AttackSample) -> None:  # noqa: B027 - optional hook
        """Probe-specific checks; the default has none."""

    @abstractmethod
    def _run(self, target: AuditTarget, sample: AttackSample) -> ResultT:
        """Measure ``target`` on ``sample``; inputs are already validated."""
