"""Canary exposure (Carlini et al. 2019, "The Secret Sharer"): how much more likely a model finds a secret it was
trained on than the other secrets it could have been.

A canary is a template with a random secret, e.g. "my secret number is 4821", drawn from a randomness space R of
``len(alphabet) ** n_digits`` secrets. Canaries are inserted into the training corpus a chosen number of times
(0 = a control canary never inserted). After training, every candidate of R is ranked by its log-perplexity
under the model; exposure = log2 |R| - log2 rank. Small spaces are enumerated exactly; large ones use the paper's
estimate: fit a skew-normal to the log-perplexities of random candidates and read the canary's tail probability.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from hfprune.audit import metrics
from hfprune.audit.privacy.probes import PrivacyProbe, register_probe
from hfprune.audit.privacy.scores import sequence_log_perplexity_bits
from hfprune.audit.results import CanaryExposureResult
from hfprune.audit.summaries import summarize_exposure
from hfprune.errors import ConfigError
from hfprune.utils.config import VERSION_KEY, check_choice, check_fraction, check_int, reject_unknown_keys
from hfprune.utils.io import atomic_write_json
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)

CANARY_FILE = "canaries.json"
DEFAULT_TEMPLATE = "my secret number is {secret}"
DIGITS = "0123456789"


@dataclass(frozen=True)
class Canary:
    """One secret and how many times it was inserted into the training corpus (0: a never-inserted control)."""

    secret: str
    repetitions: int


@dataclass
class CanarySet:
    """The canaries of one training run and the randomness space they were drawn from."""

    canaries: list[Canary]
    n_digits: int = 4
    alphabet: str = DIGITS
    template: str = DEFAULT_TEMPLATE
    separator: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        self.canaries = [c if isinstance(c, Canary) else Canary(**c) for c in self.canaries]
        check_int("CanarySet", "n_digits", self.n_digits, minimum=1)
        if len(self.alphabet) < 2 or len(set(self.alphabet)) != len(self.alphabet):
            raise ConfigError(f"CanarySet.alphabet: expected at least 2 distinct characters, got {self.alphabet!r}")
        if "{secret}" not in self.template:
            raise ConfigError(f"CanarySet.template: expected a '{{secret}}' placeholder, got {self.template!r}")
        if not self.canaries:
            raise ConfigError("CanarySet.canaries: expected at least one canary")
        for i, canary in enumerate(self.canaries):
            self._check_canary(i, canary)
        if len({c.secret for c in self.canaries}) != len(self.canaries):
            raise ConfigError("CanarySet.canaries: expected distinct secrets")

    def _check_canary(self, i: int, canary: Canary) -> None:
        if len(canary.secret) != self.n_digits or any(ch not in self.alphabet for ch in canary.secret):
            raise ConfigError(f"CanarySet.canaries[{i}].secret: expected {self.n_digits} characters of "
                              f"{self.alphabet!r}, got {canary.secret!r}")
        check_int("CanarySet", f"canaries[{i}].repetitions", canary.repetitions, minimum=0)

    @property
    def space_size(self) -> int:
        """|R| = len(alphabet) ** n_digits."""
        return len(self.alphabet) ** self.n_digits

    def text(self, secret: str) -> str:
        """The canary sentence for ``secret``."""
        return self.template.format(secret=self.separator.join(secret))

    def enumerate_secrets(self) -> Iterator[str]:
        """Every secret of R, in lexicographic order of the alphabet."""
        return ("".join(chars) for chars in itertools.product(self.alphabet, repeat=self.n_digits))

    def sample_secrets(self, n: int, seed: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """``n`` distinct secrets drawn uniformly from R minus ``exclude``."""
        if n > self.space_size - len(exclude):
            raise ConfigError(f"n: expected at most {self.space_size - len(exclude)} secrets to sample, got {n}")
        rng = np.random.default_rng(seed)
        chosen: dict[str, None] = {}
        while len(chosen) < n:
            draws = rng.integers(0, len(self.alphabet), size=(2 * (n - len(chosen)), self.n_digits))
            for row in draws:
                secret = "".join(self.alphabet[i] for i in row)
                if secret not in exclude:
                    chosen.setdefault(secret)
                if len(chosen) == n:
                    break
        return list(chosen)

    def repetition_counts(self) -> list[int]:
        return sorted({c.repetitions for c in self.canaries})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        if not isinstance(payload, dict):
            raise ConfigError(f"CanarySet: expected a mapping, got {type(payload).__name__}")
        payload = {k: v for k, v in payload.items() if k != VERSION_KEY}
        reject_unknown_keys("CanarySet", payload, cls.__dataclass_fields__)
        return cls(**payload)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``canaries.json`` into ``directory`` atomically."""
        from hfprune import __version__

        path = Path(directory) / CANARY_FILE
        atomic_write_json(path, {**self.to_dict(), VERSION_KEY: __version__})
        return path

    @classmethod
    def load(cls, directory_or_file: str | os.PathLike) -> Self:
        path = Path(directory_or_file)
        path = path / CANARY_FILE if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"{path}: no canaries recorded here (train_canary_lm writes {CANARY_FILE})")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not valid UTF-8 JSON ({exc})") from None


def make_canaries(
    repetitions: Sequence[int],
    per_repetition: int = 10,
    n_digits: int = 4,
    alphabet: str = DIGITS,
    template: str = DEFAULT_TEMPLATE,
    separator: str = "",
    seed: int = 0,
) -> CanarySet:
    """``per_repetition`` random distinct secrets for each repetition count (include 0 for control canaries)."""
    check_int("make_canaries", "per_repetition", per_repetition, minimum=1)
    if not repetitions:
        raise ConfigError("repetitions: expected at least one repetition count")
    counts = list(repetitions)
    probe = CanarySet([Canary(alphabet[0] * n_digits, 0)], n_digits, alphabet, template, separator, seed)
    secrets = probe.sample_secrets(per_repetition * len(counts), seed)
    canaries = [Canary(secret, counts[i // per_repetition]) for i, secret in enumerate(secrets)]
    return CanarySet(canaries, n_digits, alphabet, template, separator, seed)


def insert_canaries(corpus: Sequence[str], canaries: CanarySet, seed: int = 0) -> list[str]:
    """A copy of ``corpus`` (one training example per entry) with each canary inserted ``repetitions`` times, as
    its own example, at random positions."""
    copies = [canaries.text(c.secret) for c in canaries.canaries for _ in range(c.repetitions)]
    rng = np.random.default_rng(seed)
    result = list(corpus)
    for text, position in zip(copies, rng.integers(0, len(result) + 1, size=len(copies)), strict=True):
        result.insert(int(position), text)
    logger.info("inserted %d canary copies into a corpus of %d examples", len(copies), len(corpus))
    return result


# ------------------------------------------------------------------------------------------------------- exposure
@dataclass
class CanaryInputs:
    """A causal LM, its tokenizer and the canaries its training run recorded."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    canaries: CanarySet
    model_name: str
    sparsity: float = 0.0


EXPOSURE_METHODS = ("auto", "exact", "skewnorm")


@register_probe
class CanaryExposureProbe(PrivacyProbe[CanaryInputs, list[CanaryExposureResult]]):
    """Exposure of every canary, summarised per repetition count (Carlini et al. 2019).

    ``method="auto"`` enumerates R when |R| <= ``exact_max_space`` and otherwise fits a skew-normal to
    ``n_samples`` random non-canary candidates (Section 4.3 of the paper).
    """

    name = "canary_exposure"

    def __init__(
        self,
        method: str = "auto",
        exact_max_space: int = 10_000,
        n_samples: int = 5_000,
        batch_size: int = 256,
        n_resamples: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
    ):
        check_choice("CanaryExposureProbe", "method", method, EXPOSURE_METHODS)
        check_int("CanaryExposureProbe", "exact_max_space", exact_max_space, minimum=1)
        check_int("CanaryExposureProbe", "n_samples", n_samples, minimum=10)
        check_int("CanaryExposureProbe", "batch_size", batch_size, minimum=1)
        check_int("CanaryExposureProbe", "n_resamples", n_resamples, minimum=0)
        self.method, self.exact_max_space, self.n_samples = method, exact_max_space, n_samples
        self.batch_size, self.n_resamples, self.confidence, self.seed = batch_size, n_resamples, confidence, seed

    def resolved_method(self, canaries: CanarySet) -> str:
        if self.method != "auto":
            return self.method
        return "exact" if canaries.space_size <= self.exact_max_space else "skewnorm"

    def validate(self, inputs: CanaryInputs) -> None:
        if not isinstance(inputs, CanaryInputs):
            raise ConfigError(f"{self.name}: expected CanaryInputs, got {type(inputs).__name__}")
        check_fraction("CanaryInputs", "sparsity", inputs.sparsity, allow_one=True)
        space = inputs.canaries.space_size
        if self.resolved_method(inputs.canaries) == "exact" and space > self.exact_max_space:
            raise ConfigError(f"CanaryExposureProbe.method: 'exact' enumerates all {space} candidates, more than "
                              f"exact_max_space={self.exact_max_space}; raise it or use 'skewnorm'")
        available = space - len(inputs.canaries.canaries)
        if self.resolved_method(inputs.canaries) == "skewnorm" and self.n_samples > available:
            raise ConfigError(f"CanaryExposureProbe.n_samples: expected at most {available} (|R| minus the "
                              f"canaries), got {self.n_samples}; enumerate exactly instead")

    def exposures(self, inputs: CanaryInputs) -> np.ndarray:
        """Validated exposure of each canary, in the order of ``inputs.canaries.canaries``."""
        self.validate(inputs)
        return self._exposures(inputs)

    def _exposures(self, inputs: CanaryInputs) -> np.ndarray:
        canaries = inputs.canaries
        canary_bits = self._score(inputs, [c.secret for c in canaries.canaries], "canaries")
        if self.resolved_method(canaries) == "exact":
            everything = self._score(inputs, list(canaries.enumerate_secrets()), f"all {canaries.space_size} "
                                     "candidates")
            return np.atleast_1d(metrics.exposure_exact(canary_bits, everything))
        secrets = {c.secret for c in canaries.canaries}
        sample = self._score(inputs, canaries.sample_secrets(self.n_samples, self.seed, exclude=secrets),
                             f"{self.n_samples} random candidates")
        return np.atleast_1d(metrics.exposure_from_perplexities(canary_bits, sample, canaries.space_size))

    def _score(self, inputs: CanaryInputs, secrets: list[str], what: str) -> np.ndarray:
        texts = [inputs.canaries.text(secret) for secret in secrets]
        return sequence_log_perplexity_bits(inputs.model, inputs.tokenizer, texts, self.batch_size,
                                            desc=f"log-perplexity of {what}")

    def _run(self, inputs: CanaryInputs) -> list[CanaryExposureResult]:
        values = self._exposures(inputs)
        method = self.resolved_method(inputs.canaries)
        repetitions = np.array([c.repetitions for c in inputs.canaries.canaries])
        results = []
        for count in inputs.canaries.repetition_counts():
            results.append(summarize_exposure(
                values[repetitions == count], model_name=inputs.model_name, sparsity=inputs.sparsity,
                repetitions=count, space_size=inputs.canaries.space_size, method=method,  # type: ignore[arg-type]
                n_resamples=self.n_resamples, confidence=self.confidence, seed=self.seed,
            ))
            logger.info("%s: canaries inserted %dx have mean exposure %.2f of log2|R| = %.1f", inputs.model_name,
                        count, results[-1].mean_exposure.value, np.log2(inputs.canaries.space_size))
        return results
