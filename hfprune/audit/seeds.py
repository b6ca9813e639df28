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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hfprune.audit import compare
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
    return _t_test(reference.mean(axis=0), candidate.mean(axis=0), metric, confidence,
                   f"t-test over {candidate.shape[1]} examples of the correctness averaged over seeds "
                   f"({reference.shape[0]} vs {candidate.shape[0]} runs)")


def _t_test(reference: np.ndarray, candidate: np.ndarray, metric: str, confidence: float,
            test: str) -> compare.Comparison:
    """:func:`compare.paired_t` over examples of the per-example differences candidate - reference (each in
    [-1, 1]: differences of 0/1 outcomes averaged over seeds), the interval clipped to [-1, 1]."""
    found = replace(compare.paired_t(reference, candidate, metric=metric, confidence=confidence), test=test)
    if found.low is None:
        return found
    # both callers average 0/1 outcomes, so a difference lies in [-1, 1]; with a handful of examples the t interval
    # reaches past that (e.g. [-0.05, +1.55] on 4 attacked examples), which no difference can
    return replace(found, low=max(found.low, -1.0), high=min(found.high, 1.0))


def pooled_attack(
    reference_runs: Sequence[Any], candidate_runs: Sequence[Any], *, recipe: str, confidence: float = 0.95
) -> compare.Comparison | None:
    """Attack success of the candidate vs the reference over seeds, on the examples both classify correctly.

    Run i of each model is seed i, attacked on the same seeded sample (TextAttack's per-example "successful" /
    "failed" / "skipped"). Per seed, only examples neither model skipped count (as in
    :func:`hfprune.audit.compare.compare_attack`); each example's success is averaged over the seeds where it
    counts, and the per-example differences get the t-test over examples of :func:`pooled_accuracy`. None when no
    example counts in any seed.
    """
    from hfprune.audit.metrics import _as_outcomes

    if len(reference_runs) != len(candidate_runs) or not reference_runs:
        raise ConfigError(f"attack outcomes ({recipe}): expected one run per seed of each model, got "
                          f"{len(reference_runs)} and {len(candidate_runs)}")
    reference = [_as_outcomes(run) for run in reference_runs]
    candidate = [_as_outcomes(run) for run in candidate_runs]
    if len({run.shape for run in reference + candidate}) != 1:
        raise ConfigError(f"attack outcomes ({recipe}): expected every run attacked on the same sample")
    dense, pruned = np.stack(reference), np.stack(candidate)  # (seeds, examples)
    counts = (dense != "skipped") & (pruned != "skipped")
    used = counts.any(axis=0)
    if not used.any():
        return None
    weights = counts[:, used] / counts[:, used].sum(axis=0)  # each example: the mean over the seeds where it counts
    dense_success = ((dense[:, used] == "successful") * weights).sum(axis=0)
    pruned_success = ((pruned[:, used] == "successful") * weights).sum(axis=0)
    return _t_test(dense_success, pruned_success, compare.attack_metric(recipe), confidence,
                   f"t-test over {int(used.sum())} examples of the success averaged over the seeds where both "
                   f"models classify the example correctly ({int(counts.sum())} example-seed pairs, "
                   f"{dense.shape[0]} seeds)")


# ------------------------------------------------------------------------------------------- models over seeds
def compare_seeds(
    dense: Sequence[compare.PairedRecords], pruned: Sequence[compare.PairedRecords], seeds: Sequence[int], *,
    confidence: float = 0.95,
) -> dict[str, list[compare.Comparison]]:
    """Every paired test of a pruned model against the dense one, both trained once per seed (``dense[i]`` and
    ``pruned[i]`` are seed ``seeds[i]``), by metric (not yet Holm-adjusted: see :func:`compare.decide`).

    Accuracy and attack success pool the seeds in one test over examples (:func:`pooled_accuracy`,
    :func:`pooled_attack`); an LM's per-text loss averages each text's loss over the seeds and keeps the Wilcoxon
    test, the loss attack's members' and non-members' losses average each example's loss and keep the t-test. No
    test pools an AUC (membership or extraction) or a canary's exposure over seeds on the same examples, so those
    get one test per seed (DeLong, Wilcoxon), named ``"<metric>, seed <s>"``, to be Holm-adjusted with the rest.
    """
    if not len(dense) == len(pruned) == len(seeds) or not seeds:
        raise ConfigError(f"seeds: expected one dense and one pruned record per seed, got {len(dense)}, "
                          f"{len(pruned)} and {len(seeds)} seeds")
    per_seed = [compare.compare_models(d, p, confidence=confidence) for d, p in zip(dense, pruned, strict=True)]
    found: dict[str, list[compare.Comparison]] = {}
    quality = _pooled_quality([d.quality for d in dense], [p.quality for p in pruned], confidence)
    if quality is not None:
        found[quality.metric] = [quality]
    for result in pruned[0].robustness:
        runs = [(_by(d.robustness, "recipe", result.recipe), _by(p.robustness, "recipe", result.recipe))
                for d, p in zip(dense, pruned, strict=True)]
        if all(a is not None and b is not None and compare._aligned(a.outcomes, b.outcomes) for a, b in runs):
            pooled = pooled_attack([a.outcomes for a, _ in runs], [b.outcomes for _, b in runs],
                                   recipe=result.recipe, confidence=confidence)
            if pooled is not None:
                found[pooled.metric] = [pooled]
    for pooled in _pooled_member_losses(dense, pruned, confidence):
        found[pooled.metric] = [pooled]
    for seed, comparisons in zip(seeds, per_seed, strict=True):
        for c in comparisons:
            if c.metric.startswith(PER_SEED_METRICS):
                found.setdefault(c.metric, []).append(replace(c, metric=f"{c.metric}, seed {seed}"))
    return found


# metrics no test pools over seeds: compared once per seed
PER_SEED_METRICS = ("MIA AUC", compare.EXTRACTION_METRIC, "canary exposure")


def difference_spreads(
    dense: Sequence[compare.PairedRecords], pruned: Sequence[compare.PairedRecords], *, confidence: float = 0.95,
) -> dict[str, SeedSpread]:
    """Metric -> the across-seed spread of the per-seed differences (pruned - dense of the same seed)."""
    differences: dict[str, list[float]] = {}
    for d, p in zip(dense, pruned, strict=True):
        for c in compare.compare_models(d, p, confidence=confidence):
            differences.setdefault(c.metric, []).append(c.difference)
    return {metric: seed_spread(values) for metric, values in differences.items()}


def _by(results: Sequence[Any], key: str, value: Any) -> Any:
    return next((r for r in results if getattr(r, key) == value), None)


def _pooled_member_losses(
    dense: Sequence[compare.PairedRecords], pruned: Sequence[compare.PairedRecords], confidence: float
) -> list[compare.Comparison]:
    """:func:`compare.member_losses` of each example's loss averaged over the seeds (the member split is the same
    in every seed of a run); none unless every seed's loss attack scored the same members and non-members."""
    runs = [(_by(d.membership, "attack", compare.LOSS_ATTACK), _by(p.membership, "attack", compare.LOSS_ATTACK))
            for d, p in zip(dense, pruned, strict=True)]
    if any(a is None or b is None or not compare._aligned(a.scores, b.scores) or a.is_member is None
           for a, b in runs):
        return []
    is_member = np.asarray(runs[0][0].is_member, dtype=bool)
    if any(not np.array_equal(np.asarray(r.is_member, dtype=bool), is_member) for run in runs for r in run):
        return []
    found = compare.member_losses(np.mean([a.scores for a, _ in runs], axis=0),
                                  np.mean([b.scores for _, b in runs], axis=0), is_member, confidence=confidence)
    return [replace(c, test=f"{c.test} of the loss averaged over seeds ({len(runs)} seeds)") for c in found]


def _pooled_quality(dense: list[Any], pruned: list[Any], confidence: float) -> compare.Comparison | None:
    records = dense + pruned
    if any(r is None or not r.get("per_example") for r in records):
        return None
    if len({r["metric"] for r in records}) != 1 or len({len(r["per_example"]) for r in records}) != 1:
        return None
    reference, candidate = [r["per_example"] for r in dense], [r["per_example"] for r in pruned]
    if dense[0]["metric"] == "accuracy":
        return pooled_accuracy(reference, candidate, metric="accuracy", confidence=confidence)
    pooled = compare.wilcoxon(np.mean(reference, axis=0), np.mean(candidate, axis=0), metric=compare.LOSS_METRIC,
                              confidence=confidence)
    return replace(pooled, test=f"{pooled.test} over {pooled.n} texts of the loss averaged over seeds "
                                f"({len(dense)} seeds)")


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
