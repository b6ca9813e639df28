"""Coverage of the audit's confidence intervals at nominal 95%: how often each method's interval holds the truth.

- Proportions (accuracy, attack success, TPR at a fixed FPR) for n in {10, 20, 50, 200, 1000} and true rates near 0,
  0.5 and 1: Clopper-Pearson and Wilson (hfprune.audit.intervals) against the percentile bootstrap hfprune used
  before (hfprune.audit.metrics.bootstrap_ci). A proportion's interval depends on the data only through the count k,
  so coverage is computed exactly: the sum over k of P(k) for the k whose interval holds p (no simulation error).
- ROC AUC of a membership attack (members ~ N(d, 1), non-members ~ N(0, 1), half of n each; true AUC = Phi(d/sqrt 2)
  at 0.5, 0.75 and 0.98): BCa (hfprune's) against the percentile bootstrap, both resampling members and non-members
  separately; simulated.
- Mean canary exposure over n canaries, n from 2, on the exposure distributions of EXPOSURES (unmemorised canaries,
  -log2 U or exact ranks among |R| = 10^4 candidates, capped at log2 |R| as hfprune computes them; every canary
  partly memorised; mixtures with a share of memorised canaries at high exposure): the studentized bootstrap
  (hfprune's, intervals.studentized_mean_ci) against BCa and the percentile bootstrap; simulated.
- TPR at a fixed FPR with 600 members and 600 non-members (d = 1): the bias of the estimate and the coverage of an
  exact interval over the members, the percentile bootstrap and BCa, against the expected number of false positives
  FPR * 600, which is what the report's rule (intervals.MIN_FALSE_POSITIVES) is set from; simulated.

Writes ``results.json`` and ``README.md`` into ``--out``.

    python scripts/bench_intervals.py --out benchmarks/intervals          # full run (a few minutes, 1 core)
    python scripts/bench_intervals.py --quick --out /tmp/intervals        # smoke run
    python scripts/bench_intervals.py --only mean_exposure --out benchmarks/intervals   # one section again
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

from hfprune.audit import intervals, metrics

NOMINAL = 0.95
SHORT = 0.93  # the goal: coverage at least this everywhere
NS = (10, 20, 50, 200, 1000)
RATES = (0.02, 0.5, 0.98)
AUCS = (0.5, 0.75, 0.98)
MEAN_NS = (2, 5, 8, 10, 20, 30, 50, 200)
SPACE = 10_000  # |R| of the default 4-digit canaries, enumerated exactly
CAP = math.log2(SPACE)
STUDENTIZED = "studentized bootstrap"


def _ranks_to_exposure(ranks: np.ndarray) -> np.ndarray:
    return CAP - np.log2(ranks)


def _unmemorised_ranks(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return rng.integers(1, SPACE + 1, size=size)


def _mixture(share: float, top: int) -> tuple:
    """A share of the canaries memorised (rank uniform in 1..top), the rest not (rank uniform in 1..|R|)."""
    def draw(rng, size):
        memorised = rng.uniform(size=size) < share
        return _ranks_to_exposure(np.where(memorised, rng.integers(1, top + 1, size=size),
                                           _unmemorised_ranks(rng, size)))
    unmemorised_mean = CAP - float(np.mean(np.log2(np.arange(1, SPACE + 1))))
    memorised_mean = CAP - float(np.mean(np.log2(np.arange(1, top + 1))))
    return draw, (1 - share) * unmemorised_mean + share * memorised_mean, (0.0, CAP)


def _partly_memorised(power: float) -> tuple:
    """Every canary somewhat memorised: its rank fraction is U ** power (exposure power * -log2 U), capped at rank 1;
    the true mean is sum over ranks r of P(rank = r) * exposure(r)."""
    cdf = (np.arange(SPACE + 1) / SPACE) ** (1 / power)  # P(rank <= r) = P(U <= (r / |R|) ** (1 / power))
    truth = float(np.sum(np.diff(cdf) * _ranks_to_exposure(np.arange(1, SPACE + 1))))
    return (lambda rng, size: _ranks_to_exposure(np.maximum(np.ceil(rng.uniform(size=size) ** power * SPACE), 1)),
            truth, (0.0, CAP))


# name -> (draw(rng, (reps, n)) -> exposures, true mean, support)
EXPOSURES = {
    "unmemorised, -log2 U": (lambda rng, size: -np.log2(rng.uniform(size=size)), 1 / math.log(2), (0.0, math.inf)),
    "unmemorised, exact ranks": _mixture(0.0, 1),
    "all partly memorised (U^3)": _partly_memorised(3.0),
    "10% memorised": _mixture(0.1, 10),
    "30% memorised": _mixture(0.3, 10),
    "90% memorised": _mixture(0.9, 2),
}
FPR_N = 600
FPRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def proportion_coverage(n: int, p: float, n_resamples: int) -> dict[str, float]:
    """Exact coverage of each proportion interval: sum of Binomial(n, p) probabilities of the k it covers."""
    k = np.arange(n + 1)
    pmf = stats.binom.pmf(k, n, p)
    likely = k[pmf > 1e-10]  # the rest weigh < 1e-7 in total
    result = {}
    for method, name in intervals.PROPORTION_METHODS.items():
        lows, highs = intervals.proportion_ci_table(n, NOMINAL, method)  # type: ignore[arg-type]
        result[name] = float(np.sum(pmf[likely] * ((lows[likely] <= p) & (p <= highs[likely]))))
    covered = 0.0
    for count in likely:
        outcomes = np.r_[np.ones(count), np.zeros(n - count)]
        low, high = metrics.bootstrap_ci(np.mean, outcomes, n_resamples=n_resamples, confidence=NOMINAL,
                                         seed=int(count))
        covered += pmf[count] * (low <= p <= high)
    result["percentile bootstrap (old)"] = float(covered)
    return result


def _percentile_and_bca(statistic, samples, n_resamples: int, seed: int, paired: bool) -> tuple[tuple, tuple]:
    """hfprune's BCa interval, and the percentile interval of the same bootstrap distribution (the old method)."""
    low, high, distribution = intervals.bca_bootstrap(statistic, *samples, confidence=NOMINAL,
                                                      n_resamples=n_resamples, seed=seed, paired=paired)
    tail = 50 * (1 - NOMINAL)
    return tuple(np.percentile(distribution, [tail, 100 - tail])), (low, high)


def _coverage(intervals_found: list[tuple[float, float]], truth: float) -> float:
    ends = np.array(intervals_found, dtype=float)
    return float(np.mean((ends[:, 0] <= truth) & (truth <= ends[:, 1])))  # NaN (no interval) counts as a miss


def auc_coverage(n: int, auc: float, reps: int, n_resamples: int, rng: np.random.Generator) -> dict[str, float]:
    shift = math.sqrt(2) * stats.norm.ppf(auc)
    found: dict[str, list] = {"percentile bootstrap (old)": [], "BCa": []}
    for rep in range(reps):
        members = rng.normal(shift, 1.0, n // 2)
        nonmembers = rng.normal(0.0, 1.0, n - n // 2)
        percentile, bca = _percentile_and_bca(intervals.auc_two_sample, (members, nonmembers), n_resamples, rep,
                                              paired=False)
        found["percentile bootstrap (old)"].append(percentile)
        found["BCa"].append(bca)
    return {name: _coverage(ends, auc) for name, ends in found.items()}


def mean_coverage(distribution: str, n: int, reps: int, n_resamples: int, rng: np.random.Generator) -> dict:
    draw, truth, support = EXPOSURES[distribution]
    exposures = draw(rng, (reps, n))
    found: dict[str, list] = {"percentile bootstrap (old)": [], "BCa": []}
    for rep in range(reps):
        percentile, bca = _percentile_and_bca(intervals.mean_statistic, (exposures[rep],), n_resamples, rep,
                                              paired=True)
        found["percentile bootstrap (old)"].append(percentile)
        found["BCa"].append(bca)
    chunk = max(1, 20_000_000 // (n_resamples * n))  # samples per call: bounded memory for the (chunk, B, n) resamples
    ends = [intervals.studentized_mean_ci(exposures[i:i + chunk], n_resamples=n_resamples, seed=i, support=support)
            for i in range(0, reps, chunk)]
    lows, highs = (np.concatenate([e[side] for e in ends]) for side in (0, 1))
    found[STUDENTIZED] = list(zip(lows, highs, strict=True))
    widths = {name: float(np.nanmedian(np.diff(np.array(pairs, dtype=float), axis=1))) for name, pairs in found.items()}
    return {"truth": truth, **{name: _coverage(pairs, truth) for name, pairs in found.items()},
            **{f"median width, {name}": width for name, width in widths.items()}}


def tpr_coverage(fpr: float, reps: int, n_resamples: int, rng: np.random.Generator) -> dict[str, float]:
    """TPR at ``fpr`` (metrics.tpr_at_fpr, vectorised as intervals.tpr_two_sample) with 600 members and 600
    non-members, d = 1: bias, and coverage of the exact interval over the members (conditional on the estimated
    threshold), of the percentile bootstrap and of BCa (members and non-members resampled separately)."""
    truth = float(stats.norm.sf(stats.norm.isf(fpr) - 1.0))
    statistic = functools.partial(intervals.tpr_two_sample, fpr=fpr)
    lows, highs = intervals.proportion_ci_table(FPR_N, NOMINAL, "exact")
    estimates, found = [], {"Clopper-Pearson (members only)": [], "percentile bootstrap (old)": [], "BCa": []}
    for rep in range(reps):
        members, nonmembers = rng.normal(1.0, 1.0, FPR_N), rng.normal(0.0, 1.0, FPR_N)
        estimate = float(statistic(members, nonmembers))
        count = round(estimate * FPR_N)
        estimates.append(estimate)
        found["Clopper-Pearson (members only)"].append((lows[count], highs[count]))
        percentile, bca = _percentile_and_bca(statistic, (members, nonmembers), n_resamples, rep, paired=False)
        found["percentile bootstrap (old)"].append(percentile)
        found["BCa"].append(bca)
    return {"true TPR": truth, "mean estimate": float(np.mean(estimates)),
            "relative bias": float(np.mean(estimates) / truth - 1),
            **{name: _coverage(ends, truth) for name, ends in found.items()}}


def _proportions(quick: bool, boot: int, rng: np.random.Generator) -> list[dict]:
    return [{"n": n, "p": p, **proportion_coverage(n, p, boot)} for n in (NS[:2] if quick else NS) for p in RATES]


def _aucs(quick: bool, boot: int, rng: np.random.Generator) -> list[dict]:
    reps = {10: 1000, 20: 1000, 50: 1000, 200: 400, 1000: 200}
    return [{"n": n, "auc": a, "reps": 50 if quick else reps[n], **auc_coverage(n, a, 50 if quick else reps[n], boot,
                                                                                 rng)}
            for n in (NS[:2] if quick else NS) for a in AUCS]


def _means(quick: bool, boot: int, rng: np.random.Generator) -> list[dict]:
    reps = 100 if quick else 1000
    return [{"distribution": name, "n": n, "reps": reps, **mean_coverage(name, n, reps, boot, rng)}
            for name in EXPOSURES for n in (MEAN_NS[1:4] if quick else MEAN_NS)]


def _tprs(quick: bool, boot: int, rng: np.random.Generator) -> list[dict]:
    reps = 50 if quick else 300
    return [{"fpr": f, "n_nonmembers": FPR_N, "expected_false_positives": f * FPR_N, "reps": reps,
             **tpr_coverage(f, reps, boot, rng)} for f in FPRS]


# result key -> its simulation; each draws from its own generator, seeded by its place here, so a section re-run
# alone (--only) gives what a full run gives (the AUC rows keep seed 0, the stream they were first drawn from)
SECTIONS = {"auc": _aucs, "mean_exposure": _means, "tpr_at_fpr": _tprs, "proportions": _proportions}


def run(quick: bool, only: list[str] | None = None, previous: dict | None = None) -> dict:
    """Every section, or only those named, keeping the others from ``previous`` (a results.json)."""
    boot = 200 if quick else 1000
    result = dict(previous or {})
    timings = {}
    for seed, (name, simulate) in enumerate(SECTIONS.items()):
        if only and name not in only:
            continue
        started = time.perf_counter()
        result[name] = simulate(quick, boot, np.random.default_rng(seed))
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"{name} done ({timings[name]:.0f} s)", file=sys.stderr)
    result.update({"kind": "hfprune_interval_coverage", "nominal": NOMINAL, "goal": SHORT,
                   "bootstrap_resamples": boot, "quick": quick,
                   "versions": {"python": platform.python_version(), "numpy": np.__version__,
                                "scipy": scipy.__version__}})
    if only:
        result["rerun_seconds"] = {**result.get("rerun_seconds", {}), **timings}
    else:
        result["seconds"], result["section_seconds"] = round(sum(timings.values()), 1), timings
        result.pop("rerun_seconds", None)
    return result


def _cell(value: float) -> str:
    return f"**{value:.3f}**" if value < SHORT else f"{value:.3f}"


def _table(rows: list[dict], keys: list[str], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(keys + columns) + " |", "|" + "---|" * (len(keys) + len(columns))]
    for row in rows:
        lines.append("| " + " | ".join([f"{row[k]:g}" for k in keys] + [_cell(row[c]) for c in columns]) + " |")
    return lines


def _reruns(result: dict) -> str:
    reruns = result.get("rerun_seconds", {})
    return "".join(f"; the {name.replace('_', ' ')} section re-run since with `--only {name}` ({seconds:.0f} s; "
                   "the other sections are the full run's)" for name, seconds in reruns.items())


def to_markdown(result: dict) -> str:
    methods = list(intervals.PROPORTION_METHODS.values()) + ["percentile bootstrap (old)"]
    lines = ["# Interval coverage at nominal 95%", "",
             f"`python scripts/bench_intervals.py --out benchmarks/intervals` ({result['seconds']:.0f} s on one core; "
             f"{result['bootstrap_resamples']} bootstrap resamples){_reruns(result)}. Coverage below {SHORT} in "
             "**bold**.", "",
             "## Proportions (accuracy, attack success, TPR at a fixed FPR): exact coverage", "",
             "Coverage computed exactly over the binomial count (no simulation error). The old percentile bootstrap "
             "gives a zero-width interval at 0/n and n/n, so near rates of 0 or 1 it misses most of the time.", ""]
    lines += _table(result["proportions"], ["n", "p"], methods)
    lines += ["", "## Membership-inference AUC: simulated", "",
              "Members ~ N(d, 1), non-members ~ N(0, 1), n/2 each; members and non-members resampled separately. "
              "Repetitions per row in `reps` (standard error of a coverage near 0.95: 0.007 at 1000 repetitions, "
              "0.015 at 200).",
              ""]
    lines += _table(result["auc"], ["n", "auc", "reps"], ["percentile bootstrap (old)", "BCa"])
    lines += ["", "Near an AUC of 1 with few examples neither bootstrap covers: the resampled AUCs pile up at 1. "
              "Membership audits here score hundreds of members and non-members."]
    mean_methods = ["percentile bootstrap (old)", "BCa", STUDENTIZED]
    lines += ["", "## Mean canary exposure: simulated", "",
              "Exposure of a canary the model did not memorise is -log2 U (skewed, mean 1.44 bits): continuous (the "
              f"skew-normal path) or from exact ranks among |R| = {SPACE} candidates, so at most log2 |R| = "
              f"{CAP:.1f} bits as hfprune computes it. 'All partly memorised': every canary's rank fraction is "
              "U^3. 'k% memorised': that share of canaries ranks among the top 10 candidates (90%: top 2, at or "
              "one bit below the cap), the rest are unmemorised. Studentized intervals are clipped to [0, log2 |R|]. "
              "Each cell: coverage, then the median interval width in bits.", "",
              "| distribution | n | reps | true mean | " + " | ".join(mean_methods) + " |",
              "|" + "---|" * (4 + len(mean_methods))]
    for row in result["mean_exposure"]:
        lines.append(f"| {row['distribution']} | {row['n']} | {row['reps']} | {row['truth']:.2f} | "
                     + " | ".join(f"{_cell(row[m])} ({row['median width, ' + m]:.2f})" for m in mean_methods)
                     + " |")
    lines += ["", f"hfprune prints the studentized interval from {intervals.MIN_EXPOSURE_INTERVAL_N} canaries on "
              "and lists the values below that. No interval from the canaries alone can hold when memorised "
              "canaries are rare (10%: a third of the 10-canary samples hold none of them) or when a few "
              "unmemorised ones hide among memorised ones (90%): those rows fall short at small n whatever the "
              "method, and the max exposure and the listed values are what shows them. The paired comparison "
              "of exposures (Wilcoxon signed-rank) does not rest on this interval.", ""]
    tpr_methods = ["Clopper-Pearson (members only)", "percentile bootstrap (old)", "BCa"]
    lines += ["", f"## TPR at a fixed FPR: {FPR_N} members, {FPR_N} non-members, d = 1: simulated", "",
              "The estimate is the highest TPR whose FPR on these non-members is at most the target: with under one "
              "expected false positive, the TPR at zero false positives. An exact interval over the members alone "
              "ignores the noise of the threshold (estimated from the non-members) and undercovers at every FPR; "
              "the report uses BCa, and prints a TPR only from "
              f"{intervals.MIN_FALSE_POSITIVES} expected false positives on.", "",
              "| FPR | expected false positives | reps | true TPR | mean estimate | relative bias | "
              + " | ".join(tpr_methods) + " |", "|" + "---|" * (6 + len(tpr_methods))]
    for row in result["tpr_at_fpr"]:
        lines.append(f"| {row['fpr']:g} | {row['expected_false_positives']:.1f} | {row['reps']} | "
                     f"{row['true TPR']:.4f} | {row['mean estimate']:.4f} | {row['relative bias']:+.2f} | "
                     + " | ".join(_cell(row[m]) for m in tpr_methods) + " |")
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    return "\n".join(lines + ["", f"Versions: {versions}.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json and README.md")
    parser.add_argument("--quick", action="store_true", help="small n and few repetitions (a smoke run)")
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite README.md from the results.json already in --out, without simulating")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=None,
                        help="simulate only these sections, keeping the others from the results.json in --out")
    args = parser.parse_args(argv)
    previous = None
    if args.markdown_only or args.only:
        found = args.out / "results.json"
        if not found.is_file():
            parser.error(f"--out: {found} is missing; --markdown-only and --only start from a full run's results")
        previous = json.loads(found.read_text(encoding="utf-8"))
    if args.markdown_only:
        result = previous
    else:
        result = run(args.quick, args.only, previous)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(to_markdown(result), encoding="utf-8")
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
