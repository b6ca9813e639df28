"""The robustness report (``RobustnessReport``: what one audit measured) and writing it: JSON (typed results), a
markdown table, the per-example attack and transfer logs as CSV, and one plot per metric against sparsity. Every
file is written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfprune.audit.results import LoyaltyResult, MetricWithCI, RobustnessResult, results_to_markdown
from hfprune.audit.robustness.config import AuditConfig
from hfprune.audit.robustness.log import AttackLog
from hfprune.audit.robustness.sample import AttackSample
from hfprune.audit.robustness.transfer import TransferResult, TransferRun
from hfprune.audit.sparsity import SPARSITY_AXIS
from hfprune.errors import ConfigError
from hfprune.utils.config import VERSION_KEY
from hfprune.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

REPORT_JSON = "robustness_report.json"
REPORT_MD = "robustness_report.md"
ATTACK_LOG_CSV = "attack_log.csv"
TRANSFER_LOG_CSV = "transfer_log.csv"
PLOTS_DIR = "plots"
MARKERS = ("o", "s", "^", "D", "v", "P")  # overlapping series stay distinguishable


@dataclass
class RobustnessReport:
    """Everything one audit measured; ``save`` writes JSON, markdown, CSV logs and plots (see ``save_report``)."""

    config: AuditConfig
    reference: str
    models: dict[str, float]  # name -> sparsity, in the order given
    recipes: list[str]
    sample: AttackSample
    loyalty_sample: AttackSample
    robustness: list[RobustnessResult] = field(default_factory=list)
    loyalty: list[LoyaltyResult] = field(default_factory=list)
    attack_logs: list[AttackLog] = field(default_factory=list)
    transfer_runs: list[TransferRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def transfer(self) -> list[TransferResult]:
        return [run.result for run in self.transfer_runs]

    def log(self, model_name: str, recipe: str) -> AttackLog:
        """The attack log of ``recipe`` against ``model_name``."""
        for log in self.attack_logs:
            if log.model_name == model_name and log.recipe == recipe:
                return log
        raise ConfigError(f"report: no attack log for model {model_name!r} and recipe {recipe!r}; have "
                          f"{[(lg.model_name, lg.recipe) for lg in self.attack_logs]}")

    def to_dict(self) -> dict[str, Any]:
        return report_to_dict(self)

    def to_markdown(self) -> str:
        return report_to_markdown(self)

    def save(self, directory: str | Path, *, plots: bool = True, config: bool = True) -> dict[str, Path]:
        """Write the report files into ``directory``; returns what was written, by role."""
        return save_report(self, directory, plots=plots, config=config)


# ------------------------------------------------------------------------------------------------- JSON, markdown
def report_to_dict(report: RobustnessReport) -> dict[str, Any]:
    """The report as JSON-safe data: settings, models, samples, results by kind and attack timings."""
    from hfprune import __version__

    return {
        VERSION_KEY: __version__,
        "config": report.config.to_dict(),
        "reference": report.reference,
        "models": [{"name": name, "sparsity": sparsity} for name, sparsity in report.models.items()],
        "recipes": list(report.recipes),
        "sample": report.sample.to_dict(),
        "loyalty_sample": {k: v for k, v in report.loyalty_sample.to_dict().items() if k != "indices"},
        "robustness": [r.to_dict() for r in report.robustness],
        "loyalty": [r.to_dict() for r in report.loyalty],
        "transfer": [r.to_dict() for r in report.transfer],
        "timings": [{"model": log.model_name, "recipe": log.recipe, "n_examples": len(log),
                     "seconds": None if math.isnan(log.seconds) else round(log.seconds, 3)}
                    for log in report.attack_logs],
        "seconds": round(report.seconds, 3),
    }


def report_to_markdown(report: RobustnessReport) -> str:
    """Robustness, loyalty and transfer tables, with the settings needed to reproduce them."""
    c = report.config
    budget = "unlimited" if c.query_budget is None else str(c.query_budget)
    lines = [
        "# Robustness audit", "",
        f"Dataset `{c.dataset}` ({c.split}); {len(report.sample)} attacked examples drawn with seed {c.seed} "
        f"(sample `{report.sample.fingerprint()}`, the same for every model); query budget {budget} per example; "
        f"loyalty to `{report.reference}` on {len(report.loyalty_sample)} clean examples. Intervals are "
        f"{100 * c.confidence:g}% bootstrap CIs ({c.n_resamples} resamples); sparsity = {c.sparsity_measure}.", "",
        "## Attacks", "", results_to_markdown(report.robustness) if report.robustness else "(none)", "",
        "## Loyalty to the reference", "", results_to_markdown(report.loyalty) if report.loyalty else "(none)", "",
    ]
    if report.transfer:
        lines += ["## Transfer of adversarial examples", "",
                  "Rate = share of the source's adversarial examples that fool the model, among those whose clean "
                  "original the model classifies correctly.", "", results_to_markdown(report.transfer), ""]
    lines += ["## Attack time", "", "| model | recipe | examples | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {log.model_name} | {log.recipe} | {len(log)} | {log.seconds:.1f} |" for log in report.attack_logs]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------------ CSV
def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text with a header of every key, in first-seen order (empty string for no rows)."""
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def attack_log_csv(report: RobustnessReport) -> str:
    """Every attacked example of every model and recipe: texts, labels, outcome, queries, perturbed words %."""
    return rows_to_csv([row for log in report.attack_logs for row in log.csv_rows()])


def transfer_log_csv(report: RobustnessReport) -> str:
    """Every replayed adversarial example: source, target, recipe, labels, whether it transferred."""
    rows = [
        {"source": run.result.source_name, "target": run.result.model_name, "recipe": run.result.recipe,
         "index": rec.index, "ground_truth": rec.ground_truth, "clean_label": rec.clean_label,
         "adversarial_label": rec.adversarial_label, "eligible": rec.eligible, "transferred": rec.transferred}
        for run in report.transfer_runs for rec in run.records
    ]
    return rows_to_csv(rows)


# ---------------------------------------------------------------------------------------------------------- plots
@dataclass(frozen=True)
class PlotSpec:
    """One plot: which results, which metric field, how points are grouped into lines and placed on x."""

    results: Callable[[RobustnessReport], Sequence[Any]]
    metric: str
    label: str
    series: Callable[[Any, str], str]
    x: Callable[[Any], float] = lambda result: result.sparsity


def _transfer_series(result: Any, reference: str) -> str:
    direction = "reference -> pruned" if result.source_name == reference else "pruned -> reference"
    return f"{result.recipe}: {direction}"


# metric -> plot; the transfer x is the non-reference model's sparsity (the reference sits at its own)
PLOTS: dict[str, PlotSpec] = {
    **{name: PlotSpec(lambda r: r.robustness, name, label, lambda res, ref: res.recipe) for name, label in (
        ("clean_accuracy", "clean accuracy"), ("accuracy_under_attack", "accuracy under attack"),
        ("attack_success_rate", "attack success rate"), ("mean_perturbed_word_pct", "perturbed words (%)"),
        ("mean_queries", "queries per attacked example"))},
    **{name: PlotSpec(lambda r: r.loyalty, name, label, lambda res, ref: f"to {res.reference_name}")
       for name, label in (("label_loyalty", "label loyalty"), ("probability_loyalty", "probability loyalty"))},
    "transfer_rate": PlotSpec(lambda r: r.transfer, "transfer_rate", "transfer rate", _transfer_series,
                              x=lambda res: max(res.sparsity, res.source_sparsity)),
}


def plot_metric(report: RobustnessReport, name: str, path: Path, sparsity_label: str) -> bool:
    """Draw ``PLOTS[name]`` (value with CI error bars vs sparsity, a line per series) into ``path`` as PNG.

    Returns False, writing nothing, when the report has no defined value for the metric.
    """
    from hfprune.utils.plots import axis_png, pyplot

    plt = pyplot()
    spec = PLOTS[name]
    lines = _series_points(report, spec)
    if not lines:
        return False
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    try:
        for number, (series, points) in enumerate(lines.items()):
            points.sort()
            xs, values, lows, highs = (list(column) for column in zip(*points, strict=True))
            errors = [[v - lo for v, lo in zip(values, lows, strict=True)],
                      [hi - v for v, hi in zip(values, highs, strict=True)]]
            axis.errorbar(xs, values, yerr=errors, marker=MARKERS[number % len(MARKERS)], capsize=3, label=series,
                          alpha=0.85)
        png = axis_png(figure, axis, f"sparsity (fraction of {SPARSITY_AXIS.get(sparsity_label, sparsity_label)} "
                       "removed)", spec.label)
    finally:
        plt.close(figure)
    atomic_write_bytes(path, png)
    return True


def _series_points(report: RobustnessReport, spec: PlotSpec) -> dict[str, list[tuple[float, float, float, float]]]:
    """Series name -> (x, value, low, high) points with a defined value; a missing CI bar has zero length."""
    lines: dict[str, list[tuple[float, float, float, float]]] = {}
    for result in spec.results(report):
        metric: MetricWithCI = getattr(result, spec.metric)
        if math.isnan(metric.value):
            continue
        low = metric.value if metric.low is None or math.isnan(metric.low) else metric.low
        high = metric.value if metric.high is None or math.isnan(metric.high) else metric.high
        lines.setdefault(spec.series(result, report.reference), []).append(
            (spec.x(result), metric.value, low, high))
    return lines


# ----------------------------------------------------------------------------------------------------------- save
def save_report(report: RobustnessReport, directory: str | os.PathLike, *, plots: bool = True,
                config: bool = True) -> dict[str, Path]:
    """Write the JSON, markdown, CSV logs, config and plots into ``directory``; returns role -> path. A one-model
    report (the per-recipe report of :mod:`hfprune.audit.model_audit`) skips the config and plots: one point per
    metric plots nothing useful, and its settings are in the JSON."""
    out = Path(directory)
    written = {"json": out / REPORT_JSON, "markdown": out / REPORT_MD, "attack_log": out / ATTACK_LOG_CSV}
    atomic_write_json(written["json"], report_to_dict(report))
    atomic_write_text(written["markdown"], report_to_markdown(report))
    atomic_write_text(written["attack_log"], attack_log_csv(report))
    if report.transfer_runs:
        written["transfer_log"] = out / TRANSFER_LOG_CSV
        atomic_write_text(written["transfer_log"], transfer_log_csv(report))
    if config:
        written["config"] = report.config.save_pretrained(out)
    for name in PLOTS if plots else ():
        path = out / PLOTS_DIR / f"{name}_vs_sparsity.png"
        if plot_metric(report, name, path, report.config.sparsity_measure):
            written[f"plot:{name}"] = path
    logger.info("robustness report written to %s (%d files)", out, len(written))
    return written
