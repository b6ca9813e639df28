"""Audit metrics as plain numpy functions: loyalty, adversarial robustness, membership inference and canary exposure.

Every function accepts numpy arrays, lists or torch tensors, validates shapes, and raises
:class:`~hfprune.errors.ConfigError` naming the argument and what was expected. Rates are fractions in [0, 1];
perturbed-word percentages are in [0, 100] as TextAttack reports them.

References:
    Xu et al. 2021, "Beyond Preserved Accuracy: Evaluating Loyalty and Robustness of BERT Compression" (loyalty).
    Morris et al. 2020, "TextAttack" (attack-log vocabulary and summary conventions).
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (TPR at low FPR).
    Carlini et al. 2019, "The Secret Sharer" (exposure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from hfprune.errors import ConfigError

ArrayLike = Any  # numpy array, nested list or torch tensor

# Tolerance for "rows sum to 1": float32 softmax over a few thousand classes drifts by ~1e-5.
_PROB_SUM_ATOL = 1e-4

ATTACK_OUTCOMES = ("successful", "failed", "skipped")


# --------------------------------------------------------------------------------------------------- input handling
def _to_numpy(name: str, value: ArrayLike, dtype: Any = float) -> np.ndarray:
    """Convert a list, numpy array or torch tensor to numpy without importing torch."""
    if hasattr(value, "detach"):  # torch tensor: leave autograd and the device behind
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected an array of {np.dtype(dtype).name} values ({exc})") from None


def _as_matrix(name: str, value: ArrayLike) -> np.ndarray:
    """A finite (n_examples, n_classes) float matrix with at least one row and one column."""
    array = _to_numpy(name, value)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ConfigError(f"{name}: expected a non-empty 2-D array (n_examples, n_classes), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name}: expected finite values, found NaN or inf")
    return array


def _as_vector(name: str, value: ArrayLike, *, allow_nan: bool = False) -> np.ndarray:
    """A non-empty 1-D float vector, finite unless ``allow_nan``."""
    array = _to_numpy(name, value)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"{name}: expected a non-empty 1-D array, got shape {array.shape}")
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if np.any(bad):
        raise ConfigError(f"{name}: expected finite values, found {'inf' if allow_nan else 'NaN or inf'}")
    return array


def _same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"{name_b}: expected the same shape as {name_a} {a.shape}, got {b.shape}")


def _as_membership(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate an attack's scores and the 0/1 membership labels; both classes must be present."""
    score = _as_vector("scores", scores)
    labels = _to_numpy("is_member", is_member)
    if labels.ndim != 1 or labels.shape != score.shape:
        raise ConfigError(f"is_member: expected a 1-D array of length {score.size} (as scores), got {labels.shape}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ConfigError("is_member: expected booleans or 0/1 values")
    member = labels.astype(bool)
    if member.all() or not member.any():
        raise ConfigError("is_member: expected both members and non-members, got only one class")
    return score, member


# --------------------------------------------------------------------------------------------------------- loyalty
def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so large logits do not overflow."""
    array = _to_numpy("logits", logits)
    shifted = np.exp(array - array.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def looks_like_probabilities(matrix: ArrayLike) -> bool:
    """True when every entry is non-negative and every row sums to 1 (within 1e-4): how loyalty detects inputs.

    A logit matrix that happens to satisfy both is misread as probabilities; pass ``from_logits`` to be explicit.
    """
    array = _to_numpy("matrix", matrix)
    return bool(np.all(array >= 0) and np.allclose(array.sum(axis=-1), 1.0, rtol=0.0, atol=_PROB_SUM_ATOL))


def _probabilities(name: str, matrix: np.ndarray, from_logits: bool | None) -> np.ndarray:
    if from_logits is None:
        from_logits = not looks_like_probabilities(matrix)
    if from_logits:
        return softmax(matrix)
    if not looks_like_probabilities(matrix):
        raise ConfigError(f"{name}: from_logits=False but rows are not non-negative and summing to 1")
    return matrix / matrix.sum(axis=-1, keepdims=True)


def label_loyalty(reference: ArrayLike, other: ArrayLike) -> float:
    """Fraction of examples on which ``other`` predicts the same class (argmax) as ``reference``.

    Xu et al. 2021 call this label loyalty: a compressed model can keep the teacher's accuracy while disagreeing with
    it on many examples. Inputs are (n_examples, n_classes) logits or probabilities; argmax is the same for both.
    """
    ref = _as_matrix("reference", reference)
    oth = _as_matrix("other", other)
    _same_shape("reference", ref, "other", oth)
    return float(np.mean(ref.argmax(axis=1) == oth.argmax(axis=1)))


def js_distance(p: ArrayLike, q: ArrayLike) -> np.ndarray:
    """Jensen-Shannon distance per row (scipy's ``jensenshannon``): sqrt of the JS divergence in natural log, as in
    Xu et al. 2021's reference code, so it lies in [0, sqrt(ln 2)] = [0, 0.833].

    ``p`` and ``q`` are probability vectors along the last axis (1-D for one pair, 2-D for one pair per row);
    identical rows give 0, rows with disjoint support sqrt(ln 2). The result has shape ``p.shape[:-1]``.
    """
    from scipy.spatial import distance

    pa, qa = _to_numpy("p", p), _to_numpy("q", q)
    _same_shape("p", pa, "q", qa)
    for name, array in (("p", pa), ("q", qa)):
        if array.ndim not in (1, 2) or array.shape[-1] == 0 or not np.all(np.isfinite(array)):
            raise ConfigError(f"{name}: expected finite probabilities of shape (n_classes,) or (n, n_classes)")
        if not looks_like_probabilities(array):
            raise ConfigError(f"{name}: expected non-negative rows summing to 1")
    # rounding can leave a tiny negative divergence (NaN distance) for identical rows
    return np.nan_to_num(distance.jensenshannon(pa, qa, axis=-1), nan=0.0)


def probability_loyalty(reference: ArrayLike, other: ArrayLike, from_logits: bool | None = None) -> float:
    """Mean over examples of 1 - JS distance (natural log) between the two models' predicted distributions
    (Xu et al. 2021); 1 for identical predictions, 1 - sqrt(ln 2) = 0.167 for disjoint ones.

    ``from_logits=None`` decides per input: a matrix whose entries are non-negative and whose rows sum to 1 (within
    1e-4) is taken as probabilities, anything else as logits and passed through a softmax. Pass True or False to
    skip detection when raw scores could happen to look like probabilities (non-negative rows summing to 1).
    """
    ref = _as_matrix("reference", reference)
    oth = _as_matrix("other", other)
    _same_shape("reference", ref, "other", oth)
    distance = js_distance(_probabilities("reference", ref, from_logits), _probabilities("other", oth, from_logits))
    return float(np.mean(1.0 - distance))


# ---------------------------------------------------------------------------------------------- attack summaries
class AttackCounts(NamedTuple):
    """How many examples of an attack log ended in each TextAttack outcome."""

    successful: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        return self.successful + self.failed + self.skipped


def _as_outcomes(outcomes: Sequence[str] | np.ndarray) -> np.ndarray:
    """Lower-cased outcome strings, each one of ``ATTACK_OUTCOMES``."""
    if hasattr(outcomes, "detach") or isinstance(outcomes, str):
        raise ConfigError(f"outcomes: expected a sequence of strings from {list(ATTACK_OUTCOMES)}")
    array = np.char.lower(np.asarray(outcomes, dtype=str))
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"outcomes: expected a non-empty 1-D sequence of strings, got shape {array.shape}")
    unknown = sorted(set(np.unique(array)) - set(ATTACK_OUTCOMES))
    if unknown:
        raise ConfigError(f"outcomes: expected values in {list(ATTACK_OUTCOMES)}, got {unknown}")
    return array


def count_outcomes(outcomes: Sequence[str] | np.ndarray) -> AttackCounts:
    """Count "successful", "failed" and "skipped" (case-insensitive) in a per-example attack log.

    TextAttack's vocabulary: skipped = the model was already wrong on the clean input, so nothing was attacked;
    failed = the attack ran out of budget or candidates and the prediction held; successful = the prediction flipped.
    """
    array = _as_outcomes(outcomes)
    return AttackCounts(*(int(np.count_nonzero(array == name)) for name in ATTACK_OUTCOMES))


def attack_success_rate(outcomes: Sequence[str] | np.ndarray) -> float:
    """successful / (successful + failed): the share of correctly classified inputs the attack flipped.

    NaN when nothing was attacked (every example skipped); TextAttack reports 0 there, which reads as "robust".
    """
    counts = count_outcomes(outcomes)
    attacked = counts.successful + counts.failed
    return counts.successful / attacked if attacked else math.nan


def accuracy_under_attack(outcomes: Sequence[str] | np.ndarray) -> float:
    """failed / total: the share of all examples still classified correctly after the attack (TextAttack)."""
    counts = count_outcomes(outcomes)
    return counts.failed / counts.total


def clean_accuracy(outcomes: Sequence[str] | np.ndarray) -> float:
    """(successful + failed) / total: accuracy before the attack, since only correct inputs are attacked."""
    counts = count_outcomes(outcomes)
    return (counts.successful + counts.failed) / counts.total


def _per_example(name: str, values: ArrayLike, outcomes: np.ndarray) -> np.ndarray:
    array = _as_vector(name, values, allow_nan=True)
    if array.shape != outcomes.shape:
        raise ConfigError(f"{name}: expected one value per outcome ({outcomes.size}), got {array.size}")
    return array


def _mean_where(name: str, values: np.ndarray, selected: np.ndarray) -> float:
    chosen = values[selected]
    if np.any(np.isnan(chosen)):
        raise ConfigError(f"{name}: expected a number for every example it is averaged over, found NaN")
    return float(chosen.mean()) if chosen.size else math.nan


def mean_perturbed_word_pct(outcomes: Sequence[str] | np.ndarray, perturbed_word_pcts: ArrayLike) -> float:
    """Mean percentage of words changed, over successful attacks only (TextAttack's "Average perturbed word %").

    ``perturbed_word_pcts`` has one entry per example, aligned with ``outcomes``; entries of failed or skipped
    examples are ignored (they may be NaN). NaN when no attack succeeded.
    """
    kinds = _as_outcomes(outcomes)
    values = _per_example("perturbed_word_pcts", perturbed_word_pcts, kinds)
    return _mean_where("perturbed_word_pcts", values, kinds == "successful")


def mean_queries(
    outcomes: Sequence[str] | np.ndarray,
    queries: ArrayLike,
    over: Literal["attacked", "successful"] = "attacked",
) -> float:
    """Mean number of model queries per attack.

    ``over="attacked"`` (default) averages over successful and failed attacks, as TextAttack's "Avg num queries"
    does; failed attacks usually exhaust the query budget, so this is the cost of attacking the model.
    ``over="successful"`` averages over successful attacks only: the cost of a successful adversarial example.
    ``queries`` has one entry per example, aligned with ``outcomes``; ignored entries may be NaN.
    """
    if over not in ("attacked", "successful"):
        raise ConfigError(f"over: expected 'attacked' or 'successful', got {over!r}")
    kinds = _as_outcomes(outcomes)
    values = _per_example("queries", queries, kinds)
    selected = kinds == "successful" if over == "successful" else kinds != "skipped"
    return _mean_where("queries", values, selected)


# ------------------------------------------------------------------------------------------- membership inference
def roc_auc(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Area under the ROC curve of a membership-inference attack (higher score = more likely a member).

    sklearn's ``roc_auc_score``: the probability that a random member outscores a random non-member, ties counting
    one half (the Mann-Whitney U over n_members * n_nonmembers).
    """
    from sklearn.metrics import roc_auc_score

    score, member = _as_membership(scores, is_member)
    return float(roc_auc_score(member, score))


def roc_curve(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points of the rule "member if score >= threshold", one per distinct score, from strictest to loosest.

    Returns ``(fpr, tpr, thresholds)`` from sklearn's ``roc_curve(..., drop_intermediate=False)``: the first point
    is (0, 0) at threshold +inf, the last (1, 1) at the lowest score; collinear points are kept so that
    :func:`tpr_at_fpr` sees every achievable operating point.
    """
    from sklearn import metrics as sk_metrics

    score, member = _as_membership(scores, is_member)
    fpr, tpr, thresholds = sk_metrics.roc_curve(member, score, drop_intermediate=False)
    return fpr, tpr, thresholds


def tpr_at_fpr(scores: ArrayLike, is_member: ArrayLike, fpr: float) -> float:
    """The highest true-positive rate among ROC points whose false-positive rate is <= ``fpr``.

    Carlini et al. 2022 argue an attack matters when it confidently identifies a few members, so they report TPR at
    a low FPR (0.1%, 1%). No interpolation between ROC points: only thresholds that achieve FPR <= ``fpr`` on these
    non-members count. With fewer than 1/fpr non-members, this is the TPR at zero false positives.
    """
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0.0 <= fpr <= 1.0:
        raise ConfigError(f"fpr: expected a number in [0, 1], got {fpr!r}")
    fprs, tprs, _ = roc_curve(scores, is_member)
    return float(tprs[fprs <= fpr].max())  # (0, 0) is always a point, so the selection is never empty


def balanced_accuracy(scores: ArrayLike, is_member: ArrayLike) -> float:
    """The best balanced accuracy over thresholds: max of (TPR + TNR) / 2 along the ROC curve.

    This is the usual membership-inference "attack accuracy" on balanced member/non-member sets, and equals
    (1 + advantage) / 2 with Yeom et al. 2018's membership advantage max(TPR - FPR). The threshold is chosen on the
    evaluation data itself, so it is an optimistic (upper) estimate; it is at least 0.5 (the trivial thresholds).
    """
    score, member = _as_membership(scores, is_member)
    return float(balanced_accuracy_two_sample(score[member], score[~member]))


def balanced_accuracy_two_sample(members: np.ndarray, nonmembers: np.ndarray, axis: int = -1) -> np.ndarray:
    """:func:`balanced_accuracy` from the two score samples, vectorised along ``axis`` for the bootstrap.

    max over thresholds of TPR - FPR is the one-sided two-sample Kolmogorov-Smirnov statistic
    sup_t (F_nonmembers(t) - F_members(t)) (scipy's ``ks_2samp``), so the best balanced accuracy is 1/2 + D/2.
    """
    from scipy import stats

    distance = stats.ks_2samp(nonmembers, members, alternative="greater", axis=axis, method="asymp").statistic
    return 0.5 + 0.5 * np.maximum(distance, 0.0)


# ------------------------------------------------------------------------------------------------ canary exposure
def exposure(canary_rank: ArrayLike, space_size: ArrayLike) -> float | np.ndarray:
    """Exposure = log2 |R| - log2 rank (Carlini et al. 2019, Definition 3); arrays broadcast.

    ``canary_rank`` is 1-based among all ``space_size`` candidates ordered by the model's log-perplexity, rank 1 being
    the most likely: exposure ranges from 0 (the canary is the least likely) to log2 |R| (the most likely).
    """
    rank = _to_numpy("canary_rank", canary_rank)
    size = _to_numpy("space_size", space_size)
    if np.any(~np.isfinite(size)) or np.any(size < 1):
        raise ConfigError("space_size: expected finite values >= 1")
    if np.any(~np.isfinite(rank)) or np.any(rank < 1):
        raise ConfigError("canary_rank: expected 1-based ranks >= 1")
    try:
        too_large = np.any(rank > size)
    except ValueError as exc:
        raise ConfigError(f"canary_rank: cannot broadcast against space_size ({exc})") from None
    if too_large:
        raise ConfigError("canary_rank: expected ranks <= space_size")
    result = np.log2(size) - np.log2(rank)
    return float(result) if result.ndim == 0 else result


def exposure_exact(canary_score: ArrayLike, all_candidate_scores: ArrayLike) -> float | np.ndarray:
    """Exposure by enumeration: the canary's rank among every candidate in the randomness space R.

    ``all_candidate_scores`` holds the log-perplexity of every candidate in R, the inserted canary included, so
    |R| = its length. rank = the number of candidates whose log-perplexity is <= the canary's (the canary itself
    included), as Carlini et al. 2019 rank it: a candidate the model finds exactly as likely counts against the
    canary. ``canary_score`` may be an array of several canaries' scores sharing the same space.
    """
    canary = _to_numpy("canary_score", canary_score)
    candidates = np.sort(_as_vector("all_candidate_scores", all_candidate_scores))
    if not np.all(np.isfinite(canary)):
        raise ConfigError("canary_score: expected finite log-perplexities")
    rank = np.maximum(np.searchsorted(candidates, canary, side="right"), 1)  # candidates <= the canary
    return exposure(rank, candidates.size)


def exposure_from_perplexities(
    canary_log_perplexity: ArrayLike,
    reference_log_perplexities: ArrayLike,
    space_size: int | None = None,
) -> float | np.ndarray:
    """Exposure estimated by distribution modelling (Carlini et al. 2019, Section 4.3).

    Fits a skew-normal distribution to the log-perplexities of a sample of non-inserted candidates and returns
    -log2 P(X <= canary log-perplexity): the expected rank fraction of the canary, without enumerating R. Computed
    through ``logcdf`` so very exposed canaries do not underflow to infinity. When ``space_size`` is given the
    estimate is capped at log2 |R|, the largest exposure any rank can reach.
    """
    from scipy import stats  # scipy is only needed here: keep `import hfprune.audit.metrics` light

    if space_size is not None and (
        isinstance(space_size, bool) or not isinstance(space_size, (int, np.integer)) or space_size < 1
    ):
        raise ConfigError(f"space_size: expected an integer >= 1, got {space_size!r}")
    canary = _to_numpy("canary_log_perplexity", canary_log_perplexity)
    if not np.all(np.isfinite(canary)):
        raise ConfigError("canary_log_perplexity: expected finite values")
    sample = _as_vector("reference_log_perplexities", reference_log_perplexities)
    if sample.size < 10 or np.ptp(sample) == 0:
        raise ConfigError("reference_log_perplexities: expected at least 10 values that are not all equal")
    shape, loc, scale = stats.skewnorm.fit(sample)
    result = -stats.skewnorm.logcdf(canary, shape, loc=loc, scale=scale) / math.log(2.0)
    if space_size is not None:
        result = np.minimum(result, math.log2(space_size))
    result = np.maximum(result, 0.0)
    return float(result) if np.ndim(result) == 0 else result


# ------------------------------------------------------------------------------------------------------- bootstrap
def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``.

    Resamples examples (rows, axis 0) with replacement, jointly across ``arrays`` so paired values stay paired.
    ``stratify`` (one label per row, e.g. ``is_member``) resamples within each label, keeping class counts fixed:
    ROC AUC and TPR@FPR need both classes in every resample. Resamples where the metric is NaN (undefined, e.g. a
    success rate with nothing attacked) are dropped; if all are, returns (nan, nan). Same seed, same interval.
    """
    columns = [_resampleable(f"arrays[{i}]", array) for i, array in enumerate(arrays)]
    n_rows = _common_length(columns)
    _check_bootstrap_args(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    indices = _resample_indices(rng, n_rows, n_resamples, stratify)
    values = np.array([metric_fn(*(column[rows] for column in columns)) for rows in indices], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _resampleable(name: str, array: ArrayLike) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    result = np.asarray(array)
    if result.ndim == 0:
        raise ConfigError(f"{name}: expected an array with one row per example, got a scalar")
    return result


def _common_length(columns: list[np.ndarray]) -> int:
    if not columns:
        raise ConfigError("arrays: expected at least one array to resample")
    n_rows = len(columns[0])
    if n_rows == 0:
        raise ConfigError("arrays[0]: expected at least one example")
    for i, column in enumerate(columns[1:], start=1):
        if len(column) != n_rows:
            raise ConfigError(f"arrays[{i}]: expected {n_rows} rows (as arrays[0]), got {len(column)}")
    return n_rows


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: expected a number in (0, 1), got {confidence!r}")


def _resample_indices(
    rng: np.random.Generator, n_rows: int, n_resamples: int, stratify: ArrayLike | None
) -> np.ndarray:
    """An (n_resamples, n_rows) index matrix; with ``stratify``, each stratum is resampled from itself."""
    if stratify is None:
        return rng.integers(0, n_rows, size=(n_resamples, n_rows))
    labels = _resampleable("stratify", stratify)
    if labels.ndim != 1 or labels.size != n_rows:
        raise ConfigError(f"stratify: expected a 1-D array with {n_rows} labels (one per row), got {labels.shape}")
    indices = np.empty((n_resamples, n_rows), dtype=np.intp)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        indices[:, members] = members[rng.integers(0, members.size, size=(n_resamples, members.size))]
    return indices
