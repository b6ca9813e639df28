"""Extraction signal of a causal LM: how well the model's own likelihood separates training from held-out sequences.

Carlini et al. 2021 ("Extracting Training Data from Large Language Models") rank candidate sequences by perplexity
and by the ratio of log-perplexity to zlib entropy: a sequence the model finds far likelier than its compressed
length suggests is one it memorised rather than one that is merely repetitive. Here the candidates are the
recorded members and non-members, and the ranking is reported as a membership result (AUC, TPR at low FPR).
The perplexity ranking orders sequences as the loss attack does; it is reported under its own name so extraction
figures stand on their own in reports.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hfprune.audit.privacy.probes import MembershipAttack, MembershipInputs, register_probe
from hfprune.audit.privacy.scores import zlib_entropy
from hfprune.audit.results import MembershipInferenceResult

__all__ = ["PerplexityRanking", "ZlibRatioRanking", "extraction_signal", "zlib_entropy"]


@register_probe
class PerplexityRanking(MembershipAttack):
    """Rank sequences by perplexity: score = -log-perplexity (nats per token)."""

    name = "perplexity"
    family: ClassVar[str] = "extraction"
    requires = ("loss", "n_tokens")

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        return -inputs.target.loss


@register_probe
class ZlibRatioRanking(MembershipAttack):
    """Rank sequences by log-perplexity / zlib entropy (Carlini et al. 2021); lower ratio = more likely memorised,
    so score = -ratio."""

    name = "zlib_ratio"
    family: ClassVar[str] = "extraction"
    requires = ("loss", "n_tokens", "zlib_bits")

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        assert inputs.target.zlib_bits is not None  # validate() guarantees it
        return -inputs.target.loss / inputs.target.zlib_bits


def extraction_signal(inputs: MembershipInputs, **attack_kwargs: object) -> list[MembershipInferenceResult]:
    """Both rankings of ``inputs`` (an LM's statistics with texts), as membership results."""
    return [attack(**attack_kwargs)(inputs) for attack in (PerplexityRanking, ZlibRatioRanking)]  # type: ignore[arg-type]
