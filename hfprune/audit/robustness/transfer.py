"""Transfer: do adversarial examples found on one model fool another?

Adversarial examples (successful attacks) from a source model's log are replayed on a target model. Only those
whose clean original the target classifies correctly count, otherwise a "transfer" could be an error the target
made anyway; the transfer rate is the share of those the target now gets wrong. The audit replays the dense
model's examples on each pruned model and each pruned model's examples on the dense model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hfprune.audit.results import AuditResult, MetricWithCI, _Result, result_from_dict
from hfprune.audit.robustness.base import AuditTarget, Probe
from hfprune.audit.robustness.config import AuditConfig
from hfprune.audit.robustness.log import AttackLog
from hfprune.audit.robustness.sample import AttackSample
from hfprune.audit.summaries import proportion_estimate
from hfprune.errors import ConfigError


def transfer_rate(clean_correct: Any, fooled: Any) -> float:
    """Among examples the target classifies correctly when clean, the fraction whose adversarial version fools it.

    Both arguments are boolean arrays, one entry per adversarial example of the source model. NaN when the target
    gets none of the clean originals right (nothing can transfer).
    """
    correct = np.asarray(clean_correct, dtype=bool)
    wrong = np.asarray(fooled, dtype=bool)
    if correct.ndim != 1 or correct.shape != wrong.shape:
        raise ConfigError(f"fooled: expected a 1-D array shaped like clean_correct {correct.shape}, got {wrong.shape}")
    eligible = int(correct.sum())
    return float(np.count_nonzero(wrong & correct) / eligible) if eligible else math.nan


@dataclass
class TransferResult(_Result):
    """Adversarial examples of ``source_name`` (found by ``recipe``) replayed on ``model_name``."""

    kind: ClassVar[str] = "transfer"

    model_name: str
    sparsity: float
    source_name: str
    source_sparsity: float
    recipe: str
    n_adversarial: int
    n_eligible: int
    transfer_rate: MetricWithCI
    seed: int | None = None

    def markdown_cells(self) -> dict[str, str]:
        return {
            **self._identity_cells(),
            "source": f"{self.source_name} ({100 * self.source_sparsity:g}%)",
            "recipe": self.recipe,
            "adversarial examples": str(self.n_adversarial),
            "correct on clean": str(self.n_eligible),
            "transfer rate": self.transfer_rate.format(),
        }


def robustness_result_from_dict(payload: dict[str, Any]) -> AuditResult | TransferResult:
    """Like :func:`hfprune.audit.results.result_from_dict`, also knowing ``kind: transfer``."""
    if isinstance(payload, dict) and payload.get("kind") == TransferResult.kind:
        return TransferResult.from_dict(payload)
    return result_from_dict(payload)


@dataclass(frozen=True)
class TransferRecord:
    """One replayed adversarial example: the target's labels for the clean original and the perturbed text."""

    index: int
    ground_truth: int
    clean_label: int
    adversarial_label: int

    @property
    def eligible(self) -> bool:
        return self.clean_label == self.ground_truth

    @property
    def transferred(self) -> bool:
        return self.eligible and self.adversarial_label != self.ground_truth


@dataclass
class TransferRun:
    result: TransferResult
    records: list[TransferRecord] = field(default_factory=list)


class TransferProbe(Probe[TransferRun]):
    """Replay the successful attacks of ``source_log`` on a target; the sample must be the log's sample."""

    kind = "transfer"

    def __init__(self, source_log: AttackLog, config: AuditConfig | None = None) -> None:
        self.source_log = source_log
        self.config = config or AuditConfig()

    def _validate(self, target: AuditTarget, sample: AttackSample) -> None:
        if sample.fingerprint() != self.source_log.sample_fingerprint:
            raise ConfigError(f"transfer: the sample (fingerprint {sample.fingerprint()}) is not the one the source "
                              f"log of {self.source_log.model_name!r} was attacked on "
                              f"({self.source_log.sample_fingerprint})")

    def _run(self, target: AuditTarget, sample: AttackSample) -> TransferRun:
        adversarial = self.source_log.successful()
        records: list[TransferRecord] = []
        if adversarial:
            predictor = target.predictor(self.config.batch_size, self.config.max_length)
            clean = predictor.predict([_model_input(r.original) for r in adversarial])
            perturbed = predictor.predict([_model_input(r.perturbed) for r in adversarial])
            records = [TransferRecord(r.index, r.ground_truth, int(c), int(p))
                       for r, c, p in zip(adversarial, clean, perturbed, strict=True)]
        return TransferRun(self._summarize(target, records), records)

    def _summarize(self, target: AuditTarget, records: list[TransferRecord]) -> TransferResult:
        correct = np.array([r.eligible for r in records], dtype=bool)
        fooled = np.array([r.adversarial_label != r.ground_truth for r in records], dtype=bool)
        return TransferResult(
            model_name=target.name, sparsity=target.measured_sparsity(self.config.sparsity_measure),
            source_name=self.source_log.model_name, source_sparsity=self.source_log.sparsity,
            recipe=self.source_log.recipe, n_adversarial=len(records), n_eligible=int(correct.sum()),
            transfer_rate=self._with_ci(correct, fooled), seed=self.config.seed,
        )

    def _with_ci(self, correct: np.ndarray, fooled: np.ndarray) -> MetricWithCI:
        """Transfer rate: a proportion of the eligible examples, with its exact interval."""
        return proportion_estimate(int(np.count_nonzero(fooled & correct)), int(correct.sum()),
                                   confidence=self.config.confidence)


def _model_input(texts: tuple[str, ...]) -> str | tuple[str, ...]:
    return texts[0] if len(texts) == 1 else texts
