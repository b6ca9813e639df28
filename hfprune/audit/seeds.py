"""Accuracy comparisons of models trained with several seeds and scored on the same examples.

Per seed, two models are compared with the exact McNemar test (:func:`hfprune.audit.compare.mcnemar`). Pooling the
seeds needs care: summing the discordant counts over seeds and running one McNemar test would treat the 3 x 872
(example, seed) pairs as independent, yet the same examples repeat in every seed and the hard ones are discordant
again and again, so that test is anti-conservative. The pooled test here keeps the example as the independent unit:
each example's correctness is averaged over the seeds of each model (a value in {0, 1/k, ..., 1}), and the mean of
the paired per-example differences, which is exactly the difference of the mean accuracies over seeds, gets a
one-sample t-test and t interval over examples (scipy; with hundreds of bounded differences the t distribution is
accurate, and test and interval agree, which a rank test such as Wilcoxon's does not with a mean difference).

What it does not do: it conditions on the seeds that were run (the inference is about these k runs of each model
averaged, over the population of sentences the dev set samples), so it does not tell how a further seed would
come out. A test over seeds as the unit (a sign test of the per-seed differences) answers that, but with 3 seeds its
smallest two-sided p-value is 0.25: it can never reject, so reports list the per-seed differences instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hfprune.audit import compare, intervals
from hfprune.errors import ConfigError


@dataclass(frozen=True)
class SeedSpread:
    """A value measured once per seed: its mean, sample standard deviation (NaN for one seed), range and count."""

    mean: float
    sd: float
    low: float
    high: float
    n: int


def seed_spread(values: Sequence[float]) -> SeedSpread:
    """Mean, standard deviation (ddof 1), minimum and maximum of one value over seeds."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"values: expected one number per seed (at least one), got shape {array.shape}")
    sd = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return SeedSpread(float(array.mean()), sd, float(array.min()), float(array.max()), int(array.size))


def _runs(name: str, runs: Sequence[Any]) -> np.ndarray:
    """(seeds, examples) array of 0/1 correctness; every run scores the same examples."""
    if len(runs) == 0:
        raise ConfigError(f"{name}: expected the per-example correctness of at least one run")
    lengths = {len(run) for run in runs}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigError(f"{name}: expected every run to score the same non-empty examples, got lengths "
                          f"{sorted(lengths)}")
    array = np.asarray(runs)
    if not np.all((array == 0) | (array == 1)):
        raise ConfigError(f"{name}: expected 0/1 (or boolean) correctness per example")
    return array.astype(float)


def pooled_accuracy(
    reference_runs: Sequence[Any], candidate_runs: Sequence[Any], *, metric: str, confidence: float = 0.95
) -> compare.Comparison:
    """Candidate vs reference accuracy over all their seeds: t-test over examples of the per-example correctness
    averaged over each model's seeds (see the module docstring for why not McNemar on summed counts).

    ``reference_runs`` may hold a single run (a fixed dense teacher) while ``candidate_runs`` holds one per seed.
    The comparison's ``dense``/``pruned`` fields carry the reference's and candidate's mean accuracy.
    """
    reference, candidate = _runs(f"{metric} (reference)", reference_runs), _runs(f"{metric} (candidate)",
                                                                                   candidate_runs)
    if reference.shape[1] != candidate.shape[1]:
        raise ConfigError(f"{metric}: expected both models scored on the same examples, got "
                          f"{reference.shape[1]} and {candidate.shape[1]}")
    from scipy import stats

    intervals.check_confidence(confidence)
    differences = candidate.mean(axis=0) - reference.mean(axis=0)
    low = high = None
    if np.any(differences != differences[0]):
        result = stats.ttest_1samp(differences, 0.0)
        p_value = float(result.pvalue)
        low, high = (float(x) for x in result.confidence_interval(confidence))
    else:  # every example differs alike (all 0: the runs agree everywhere): no spread to test against
        p_value = 1.0 if differences[0] == 0 else 0.0
    return compare.Comparison(
        metric, float(reference.mean()), float(candidate.mean()), float(differences.mean()), low, high, p_value,
        differences.size, f"t-test over {differences.size} examples of the correctness averaged over seeds "
                          f"({reference.shape[0]} vs {candidate.shape[0]} runs)")


def per_seed_accuracy(
    reference_runs: Sequence[Any], candidate_runs: Sequence[Any], *, metric: str, seeds: Sequence[int],
    confidence: float = 0.95,
) -> list[compare.Comparison]:
    """Exact McNemar per seed: candidate run i against reference run i (the same seed), or against the single
    reference run when there is one (a fixed dense teacher)."""
    reference, candidate = _runs(f"{metric} (reference)", reference_runs), _runs(f"{metric} (candidate)",
                                                                                   candidate_runs)
    if len(seeds) != candidate.shape[0] or reference.shape[0] not in (1, candidate.shape[0]):
        raise ConfigError(f"{metric}: expected one seed per candidate run and one reference run or one per seed, "
                          f"got {len(seeds)} seeds, {reference.shape[0]} and {candidate.shape[0]} runs")
    return [compare.mcnemar(reference[i if reference.shape[0] > 1 else 0], candidate[i], confidence=confidence,
                            metric=f"{metric}, seed {seed}")
            for i, seed in enumerate(seeds)]
