"""Loyalty of a model to a reference (the dense model) on clean inputs, after Xu et al. 2021.

The metric functions live in :mod:`hfprune.audit.metrics`; this probe only queries both models on the same
sample, batched, and hands the probabilities to :func:`hfprune.audit.summaries.summarize_loyalty`.
"""

from __future__ import annotations

import numpy as np

from hfprune.audit.results import LoyaltyResult
from hfprune.audit.robustness.base import AuditTarget, Probe
from hfprune.audit.robustness.config import AuditConfig
from hfprune.audit.robustness.sample import AttackSample
from hfprune.audit.summaries import summarize_loyalty
from hfprune.errors import ConfigError


class LoyaltyProbe(Probe[LoyaltyResult]):
    """Label and probability loyalty of a target to ``reference``; the reference's outputs are computed once."""

    kind = "loyalty"

    def __init__(self, reference: AuditTarget, config: AuditConfig | None = None) -> None:
        self.reference = reference
        self.config = config or AuditConfig()
        self._reference_probs: dict[str, np.ndarray] = {}  # sample fingerprint -> probabilities

    def probabilities(self, target: AuditTarget, sample: AttackSample) -> np.ndarray:
        """``target``'s class probabilities on ``sample`` (batched, with a progress bar when enabled)."""
        predictor = target.predictor(self.config.batch_size, self.config.max_length)
        return predictor.predict_proba(sample.model_inputs(), progress=self.config.progress)

    def reference_probabilities(self, sample: AttackSample) -> np.ndarray:
        key = sample.fingerprint()
        if key not in self._reference_probs:
            self._reference_probs[key] = self.probabilities(self.reference, sample)
        return self._reference_probs[key]

    def _validate(self, target: AuditTarget, sample: AttackSample) -> None:
        if target.num_labels is not None and self.reference.num_labels is not None and (
            target.num_labels != self.reference.num_labels
        ):
            raise ConfigError(f"loyalty: model {target.name!r} has {target.num_labels} classes but the reference "
                              f"{self.reference.name!r} has {self.reference.num_labels}")

    def _run(self, target: AuditTarget, sample: AttackSample) -> LoyaltyResult:
        reference = self.reference_probabilities(sample)
        other = reference if target is self.reference else self.probabilities(target, sample)
        return summarize_loyalty(
            reference, other, model_name=target.name,
            sparsity=target.measured_sparsity(self.config.sparsity_measure), reference_name=self.reference.name,
            from_logits=False, n_resamples=self.config.n_resamples, confidence=self.config.confidence,
            seed=self.config.seed,
        )
