"""Privacy probes: one base class, a registry by name, and the membership-inference attacks.

Every probe is called the same way: ``probe(inputs)`` validates the inputs (public ``__call__``) and then runs the
probe (abstract ``_run``), returning a typed result from :mod:`hfprune.audit.results`. Membership attacks score each
audited example (higher = more likely a member) from per-example statistics (:class:`ExampleStats`), so they are
tested on constructed statistics and run unchanged on classifiers and causal LMs.

References:
    Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting" (loss threshold).
    Salem et al. 2019, "ML-Leaks" (confidence and entropy of the prediction).
    Watson et al. 2022, "On the Importance of Difficulty Calibration in Membership Inference Attacks";
    Mireshghallah et al. 2022, "Quantifying Privacy Risks of Masked Language Models Using Membership Inference
    Attacks" (reference-calibrated scores).
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (LiRA, TPR at low FPR).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from hfprune.audit.privacy.scores import ExampleStats
from hfprune.audit.results import MembershipInferenceResult
from hfprune.audit.summaries import summarize_membership
from hfprune.errors import ConfigError
from hfprune.utils.config import check_choice, check_fraction, check_int
from hfprune.utils.registry import add

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


class PrivacyProbe(ABC, Generic[InputT, ResultT]):
    """Base of every privacy probe: ``__call__`` validates, the subclass's ``_run`` measures."""

    name: ClassVar[str]

    def __call__(self, inputs: InputT) -> ResultT:
        self.validate(inputs)
        return self._run(inputs)

    @abstractmethod
    def validate(self, inputs: InputT) -> None:
        """Raise :class:`~hfprune.errors.ConfigError` naming the field when ``inputs`` cannot be probed."""

    @abstractmethod
    def _run(self, inputs: InputT) -> ResultT:
        """Run the probe on validated inputs."""


PROBES: dict[str, type[PrivacyProbe]] = {}


def register_probe(cls: type[PrivacyProbe]) -> type[PrivacyProbe]:
    """Class decorator adding ``cls`` to :data:`PROBES` under ``cls.name``; a name taken twice is an error."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__name__}.name: expected a non-empty string naming the probe")
    return add(PROBES, name, cls, "probe name")


BUILTIN_PROBE_MODULES = ("hfprune.audit.privacy.extraction", "hfprune.audit.privacy.canaries")


def load_builtin_probes() -> dict[str, type[PrivacyProbe]]:
    """Import the modules whose probes register themselves, so :data:`PROBES` lists every built-in probe."""
    import importlib

    for module in BUILTIN_PROBE_MODULES:
        importlib.import_module(module)
    return PROBES


def get_probe(name: str, **kwargs: Any) -> PrivacyProbe:
    """An instance of the probe registered as ``name``; ``kwargs`` go to its constructor."""
    load_builtin_probes()
    if name not in PROBES:
        raise ConfigError(f"probe: expected one of {sorted(PROBES)}, got {name!r}")
    return PROBES[name](**kwargs)


# ------------------------------------------------------------------------------------------- membership inference
@dataclass
class MembershipInputs:
    """What a membership attack sees: the target model's statistics on members and non-members, and optionally
    those of a reference model and of shadow models that never trained on any audited example."""

    target: ExampleStats
    is_member: np.ndarray
    model_name: str
    sparsity: float = 0.0
    reference: ExampleStats | None = None
    shadows: Sequence[ExampleStats] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.is_member = np.asarray(self.is_member).astype(bool)
        check_fraction("MembershipInputs", "sparsity", self.sparsity, allow_one=True)


class MembershipAttack(PrivacyProbe[MembershipInputs, MembershipInferenceResult]):
    """A membership attack: per-example scores (higher = member), summarised with bootstrap CIs.

    ``requires`` names the :class:`ExampleStats` fields the attack reads; subclasses set ``needs_reference`` or
    ``min_shadows`` when they need extra models.
    """

    family: ClassVar[str] = "membership"
    requires: ClassVar[tuple[str, ...]] = ("loss",)
    needs_reference: ClassVar[bool] = False
    min_shadows: ClassVar[int] = 0

    def __init__(self, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0, keep_roc: bool = True):
        check_int(type(self).__name__, "n_resamples", n_resamples, minimum=0)
        if not 0.0 < confidence < 1.0:
            raise ConfigError(f"{type(self).__name__}.confidence: expected a number in (0, 1), got {confidence!r}")
        self.n_resamples, self.confidence, self.seed, self.keep_roc = n_resamples, confidence, seed, keep_roc

    def validate(self, inputs: MembershipInputs) -> None:
        if not isinstance(inputs, MembershipInputs):
            raise ConfigError(f"{self.name}: expected MembershipInputs, got {type(inputs).__name__}")
        n = len(inputs.target)
        if inputs.is_member.shape != (n,) or inputs.is_member.all() or not inputs.is_member.any():
            raise ConfigError(f"is_member: expected {n} booleans with both members and non-members")
        self._check_stats("target", inputs.target, n)
        if self.needs_reference:
            if inputs.reference is None:
                raise ConfigError(f"reference: attack {self.name!r} needs a reference model's statistics")
            self._check_stats("reference", inputs.reference, n)
        if len(inputs.shadows) < self.min_shadows:
            raise ConfigError(f"shadows: attack {self.name!r} needs at least {self.min_shadows} shadow models, "
                              f"got {len(inputs.shadows)}")
        for i, shadow in enumerate(inputs.shadows):
            self._check_stats(f"shadows[{i}]", shadow, n)

    def _check_stats(self, where: str, stats: ExampleStats, n: int) -> None:
        if len(stats) != n:
            raise ConfigError(f"{where}: expected statistics of {n} examples (as target), got {len(stats)}")
        missing = [name for name in self.requires if getattr(stats, name) is None]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: attack {self.name!r} needs it; compute the statistics from "
                              "texts (ExampleStats.with_texts) to fill it")

    def scores(self, inputs: MembershipInputs) -> np.ndarray:
        """Validated per-example membership scores, higher = more likely a member."""
        self.validate(inputs)
        return self._scores(inputs)

    @abstractmethod
    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        """Scores of validated inputs."""

    def _run(self, inputs: MembershipInputs) -> MembershipInferenceResult:
        return summarize_membership(
            self._scores(inputs), inputs.is_member, model_name=inputs.model_name, sparsity=inputs.sparsity,
            attack=self.name, keep_roc=self.keep_roc, n_resamples=self.n_resamples, confidence=self.confidence,
            seed=self.seed,
        )


@register_probe
class LossThresholdAttack(MembershipAttack):
    """Yeom et al. 2018: members have lower loss. Score = -loss (for an LM, -log-perplexity)."""

    name = "loss"

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        return -inputs.target.loss


@register_probe
class ConfidenceAttack(MembershipAttack):
    """Salem et al. 2019: members get more confident predictions. Score = probability of the true label (mean
    true-token probability for an LM). For a classifier this ranks exactly as the loss attack (p = exp(-loss)); for
    an LM the mean probability and the mean log-probability rank differently."""

    name = "confidence"
    requires = ("confidence",)

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        return inputs.target.confidence


@register_probe
class EntropyAttack(MembershipAttack):
    """Salem et al. 2019: members get sharper (lower-entropy) predictive distributions. Score = -entropy."""

    name = "entropy"
    requires = ("entropy",)

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        return -inputs.target.entropy


@register_probe
class ReferenceCalibratedAttack(MembershipAttack):
    """Difficulty calibration (Watson et al. 2022; Mireshghallah et al. 2022 for LMs): score = reference loss -
    target loss, where the reference model never saw the members (the pre-fine-tuning base model, or one trained on
    disjoint data). An example that is merely easy has low loss under both models and scores near 0."""

    name = "reference"
    needs_reference = True

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        assert inputs.reference is not None  # validate() guarantees it
        return inputs.reference.loss - inputs.target.loss


VARIANCES = ("global", "per_example")


@register_probe
class LiRAAttack(MembershipAttack):
    """Offline LiRA (Carlini et al. 2022): k shadow models trained without any audited example give,
    per example, a Gaussian of the OUT statistic (logit-scaled confidence); the score is how far above that Gaussian
    the target's statistic lies, z = (phi - mu_out) / sigma_out. The one-sided test's p-value is 1 - Phi(z), so
    ranking by z is ranking by the likelihood test, without saturating at p = 0.

    ``variance="global"`` pools one sigma over all examples, which the paper recommends for few shadows (< 64);
    ``"per_example"`` fits each example's own sigma. The user grants the compute: k is the number of shadows given.
    """

    name = "lira"
    requires = ("lira",)
    min_shadows = 2

    def __init__(self, variance: str = "global", **kwargs: Any):
        super().__init__(**kwargs)
        check_choice("LiRAAttack", "variance", variance, VARIANCES)
        self.variance = variance

    def _scores(self, inputs: MembershipInputs) -> np.ndarray:
        out = np.stack([shadow.lira for shadow in inputs.shadows])  # (k, n)
        mu = out.mean(axis=0)
        if self.variance == "global":
            sigma = np.full_like(mu, np.sqrt(np.sum((out - mu) ** 2) / (out.size - mu.size)))
        else:
            sigma = out.std(axis=0, ddof=1)
        floor = max(1e-6 * float(np.median(np.abs(out))), 1e-12)  # a constant shadow statistic must not divide by 0
        return (inputs.target.lira - mu) / np.maximum(sigma, floor)


def attack_names(family: str = "membership") -> list[str]:
    """Registered attacks of ``family``: "membership" or "extraction"."""
    load_builtin_probes()
    return [name for name, cls in PROBES.items() if issubclass(cls, MembershipAttack) and cls.family == family]


def applicable_attacks(inputs: MembershipInputs, names: Sequence[str] = (), family: str = "membership") -> list[str]:
    """The requested attacks, checked to be registered; with ``names`` empty, every registered attack of
    ``family`` whose inputs are present (a reference model, enough shadows, the statistics it reads)."""
    known = attack_names(family)
    if names:
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"attacks: expected names from {sorted(known)}, got {unknown}")
        return list(names)
    return [name for name in known if _has_inputs(PROBES[name], inputs)]  # type: ignore[arg-type]


def _has_inputs(cls: type[MembershipAttack], inputs: MembershipInputs) -> bool:
    if cls.needs_reference and inputs.reference is None:
        return False
    if len(inputs.shadows) < cls.min_shadows:
        return False
    return all(getattr(inputs.target, name) is not None for name in cls.requires)
