"""The privacy report: per model, the train/held-out gap beside membership, extraction and exposure results;
saved as JSON, markdown and plots of AUC, TPR at low FPR and exposure against sparsity, plus ROC curves.

The gap comes first and is repeated in every attack row: an AUC near 0.5 on a model with no train/held-out gap
means "nothing to leak", not "no leak".
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from hfprune.audit.intervals import MIN_FALSE_POSITIVES, smallest_resolved_fpr
from hfprune.audit.results import (
    CanaryExposureResult,
    MembershipInferenceResult,
    result_from_dict,
    results_to_markdown,
)
from hfprune.errors import ConfigError
from hfprune.utils.config import VERSION_KEY, ConfigMixin, reject_unknown_keys
from hfprune.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

REPORT_JSON = "privacy_report.json"
REPORT_MARKDOWN = "privacy_report.md"
PLOTS_DIR = "plots"
PLOT_FILES = {
    "auc": "mia_auc_vs_sparsity.png",
    "tpr": "mia_tpr_low_fpr_vs_sparsity.png",
    "exposure": "canary_exposure_vs_sparsity.png",
    "roc": "mia_roc_curves.png",
}


@dataclass(frozen=True)
class GeneralizationGap:
    """Accuracy and mean loss of a model on its members (train) and non-members (held out).

    For a classifier accuracy is label accuracy and loss the cross-entropy; for a causal LM, next-token accuracy
    and the per-token NLL (log-perplexity), averaged over tokens.
    """

    train_accuracy: float
    heldout_accuracy: float
    train_loss: float
    heldout_loss: float
    n_members: int
    n_nonmembers: int
    accuracy_kind: str = "label accuracy"

    @property
    def accuracy_gap(self) -> float:
        return self.train_accuracy - self.heldout_accuracy

    @property
    def loss_gap(self) -> float:
        return self.heldout_loss - self.train_loss

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_gap": self.accuracy_gap, "loss_gap": self.loss_gap}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        values = {k: v for k, v in payload.items() if k not in ("accuracy_gap", "loss_gap")}
        reject_unknown_keys("GeneralizationGap", values, cls.__dataclass_fields__)
        return cls(**values)

    def cells(self) -> dict[str, str]:
        """The gap as markdown cells, for the gap table and beside every attack row."""
        return {
            "train / held-out acc": f"{self.train_accuracy:.3f} / {self.heldout_accuracy:.3f}",
            "acc gap": f"{self.accuracy_gap:+.3f}",
            "train / held-out loss": f"{self.train_loss:.3f} / {self.heldout_loss:.3f}",
            "loss gap": f"{self.loss_gap:+.3f}",
        }


# how the reference and shadow models of an audit were trained -> the report's wording
SHADOW_MODES: dict[str, str] = {
    "dense": "dense fine-tuning only (the same shadows for the dense model and every pruned copy)",
    "target": "the audited model's own recipe (dense fine-tuning; for a pruned model, then the same pruning with "
              "distillation from the shadow's own dense model)",
}


@dataclass(frozen=True)
class ShadowsUsed:
    """How many reference/shadow models the membership attacks compared against, and how they were trained."""

    n: int
    trained_as: str  # a key of SHADOW_MODES

    def __post_init__(self) -> None:
        if self.trained_as not in SHADOW_MODES:
            raise ConfigError(f"ShadowsUsed.trained_as: expected one of {sorted(SHADOW_MODES)}, "
                              f"got {self.trained_as!r}")

    def line(self, model_name: str) -> str:
        return (f"{model_name}: {self.n} shadow model(s) (the first is the reference), trained with "
                f"{SHADOW_MODES[self.trained_as]}; shadows: {self.trained_as}")


@dataclass
class PrivacyEntry:
    """Everything audited for one model (one sparsity)."""

    model_name: str
    sparsity: float
    gap: GeneralizationGap
    membership: list[MembershipInferenceResult] = field(default_factory=list)
    extraction: list[MembershipInferenceResult] = field(default_factory=list)
    exposure: list[CanaryExposureResult] = field(default_factory=list)
    shadows: ShadowsUsed | None = None  # None: no reference or shadow model was given

    def to_dict(self) -> dict[str, Any]:
        payload = {
            "model_name": self.model_name, "sparsity": self.sparsity, "gap": self.gap.to_dict(),
            "membership": [r.to_dict() for r in self.membership],
            "extraction": [r.to_dict() for r in self.extraction],
            "exposure": [r.to_dict() for r in self.exposure],
        }
        if self.shadows is not None:  # absent without shadows: such entries read and write as before
            payload["shadows"] = asdict(self.shadows)
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        expected = {"model_name", "sparsity", "gap", "membership", "extraction", "exposure"}
        if not isinstance(payload, dict) or not expected <= set(payload) <= expected | {"shadows"}:
            raise ConfigError(f"PrivacyEntry: expected keys {sorted(expected)} (and shadows), got "
                              f"{sorted(payload) if isinstance(payload, dict) else type(payload).__name__}")
        results = {name: [result_from_dict(item) for item in payload[name]]
                   for name in ("membership", "extraction", "exposure")}
        shadows = payload.get("shadows")
        if shadows is not None and (not isinstance(shadows, dict) or set(shadows) != {"n", "trained_as"}):
            raise ConfigError(f"PrivacyEntry.shadows: expected a mapping with keys n and trained_as, got {shadows!r}")
        return cls(payload["model_name"], float(payload["sparsity"]), GeneralizationGap.from_dict(payload["gap"]),
                   **results, shadows=None if shadows is None else ShadowsUsed(**shadows))  # type: ignore[arg-type]


class _BesideGap:
    """A result whose markdown row carries its model's train/held-out gap (for ``results_to_markdown``)."""

    def __init__(self, result: MembershipInferenceResult | CanaryExposureResult, gap: GeneralizationGap):
        self.result, self.gap = result, gap

    def markdown_cells(self) -> dict[str, str]:
        return {**self.result.markdown_cells(), **self.gap.cells()}


@dataclass
class PrivacyReport:
    """The privacy audit of a dense model and its pruned variants."""

    entries: list[PrivacyEntry]
    title: str = "Privacy audit"

    def __post_init__(self) -> None:
        if not self.entries:
            raise ConfigError("PrivacyReport.entries: expected at least one audited model")

    def to_dict(self) -> dict[str, Any]:
        from hfprune import __version__

        return {"kind": "privacy_report", "title": self.title, VERSION_KEY: __version__,
                "entries": [entry.to_dict() for entry in self.entries]}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        if not isinstance(payload, dict) or payload.get("kind") != "privacy_report":
            raise ConfigError("PrivacyReport: expected a mapping with kind 'privacy_report'")
        return cls([PrivacyEntry.from_dict(entry) for entry in payload.get("entries", [])],
                   payload.get("title", "Privacy audit"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        path = Path(path)
        path = path / REPORT_JSON if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read a privacy report ({exc})") from None

    def to_markdown(self) -> str:
        """Gap table, then membership, extraction and exposure tables with the gap beside every row."""
        lines = [f"# {self.title}", "", "## Train / held-out gap (members vs non-members)", "",
                 _gap_table(self.entries)]
        for heading, attribute in (("Membership inference", "membership"), ("Extraction signal", "extraction"),
                                   ("Canary exposure", "exposure")):
            rows = [_BesideGap(result, entry.gap) for entry in self.entries for result in getattr(entry, attribute)]
            if rows:
                lines += [f"## {heading}", "", results_to_markdown(rows)]  # type: ignore[arg-type]
            if attribute == "membership" and any(entry.shadows for entry in self.entries):
                lines += ["Reference and LiRA shadow models, trained on examples disjoint from the audited ones:", "",
                          *(f"- {entry.shadows.line(entry.model_name)}" for entry in self.entries if entry.shadows),
                          ""]
        return "\n".join(lines)

    def save(
        self, directory: str | os.PathLike, plots: bool = True, config: ConfigMixin | None = None
    ) -> dict[str, Path]:
        """Write JSON, markdown, the audit ``config`` (when given) and (``plots``) PNG figures into ``directory``;
        returns role -> path."""
        directory = Path(directory)
        written = {"json": directory / REPORT_JSON, "markdown": directory / REPORT_MARKDOWN}
        atomic_write_json(written["json"], self.to_dict())
        atomic_write_text(written["markdown"], self.to_markdown())
        if config is not None:
            written["config"] = config.save_pretrained(directory)
        if plots:
            written.update(save_plots(self, directory))
        logger.info("privacy report written to %s", directory)
        return written


def _gap_table(entries: Sequence[PrivacyEntry]) -> str:
    header = ["model", "sparsity", "metric", *entries[0].gap.cells()]
    rows = [[entry.model_name, f"{100 * entry.sparsity:g}%", entry.gap.accuracy_kind, *entry.gap.cells().values()]
            for entry in entries]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header), *rows]) + "\n"


# ---------------------------------------------------------------------------------------------------------- plots
def save_plots(report: PrivacyReport, directory: str | os.PathLike) -> dict[str, Path]:
    """AUC, TPR at 1% / 0.1% FPR and exposure against sparsity, and ROC curves; only plots that have data."""
    from hfprune.utils.plots import pyplot

    plt = pyplot()
    written = {}
    for key, draw in (("auc", _plot_auc), ("tpr", _plot_tpr), ("exposure", _plot_exposure), ("roc", _plot_roc)):
        figure = draw(report, plt)
        if figure is None:
            continue
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
        finally:
            plt.close(figure)
        path = Path(directory) / PLOTS_DIR / PLOT_FILES[key]
        atomic_write_bytes(path, buffer.getvalue())
        written[f"plot_{key}"] = path
    return written


def _series(entries: Sequence[PrivacyEntry], attribute: str, key: Any) -> dict[Any, list[tuple[float, Any]]]:
    """(sparsity, result) points grouped by ``key(result)``, sorted by sparsity."""
    grouped: dict[Any, list[tuple[float, Any]]] = {}
    for entry in entries:
        for result in getattr(entry, attribute):
            grouped.setdefault(key(result), []).append((entry.sparsity, result))
    return {name: sorted(points, key=lambda p: p[0]) for name, points in grouped.items()}


MARKERS = "os^Dv<>PX"


def _errorbar(axis: Any, points: list[tuple[float, Any]], metric: str, label: str, number: int = 0) -> None:
    """One series with its CI as error bars; markers and dashes vary so coinciding series stay visible."""
    x = [100 * s for s, _ in points]
    values = [getattr(r, metric) for _, r in points]
    y = np.array([v.value for v in values])
    low = np.array([v.value - v.low if v.low is not None else 0.0 for v in values])
    high = np.array([v.high - v.value if v.high is not None else 0.0 for v in values])
    axis.errorbar(x, y, yerr=np.clip([low, high], 0, None), marker=MARKERS[number % len(MARKERS)], capsize=3,
                  label=label, linestyle="--" if label.startswith("extraction") else "-", alpha=0.85)


def _plot_auc(report: PrivacyReport, plt: Any) -> Any:
    series = {**_series(report.entries, "membership", lambda r: r.attack),
              **_series(report.entries, "extraction", lambda r: f"extraction: {r.attack}")}
    if not series:
        return None
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True, height_ratios=[2, 1], layout="tight")
    for number, (name, points) in enumerate(series.items()):
        _errorbar(top, points, "auc", name, number)
    top.axhline(0.5, color="grey", linestyle=":", label="chance")
    top.set(ylabel="ROC AUC (95% CI)", title="Membership inference vs sparsity")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    entries = sorted(report.entries, key=lambda e: e.sparsity)
    x = [100 * e.sparsity for e in entries]
    bottom.plot(x, [e.gap.accuracy_gap for e in entries], marker="s", label="accuracy gap (train - held-out)")
    bottom.plot(x, [e.gap.loss_gap for e in entries], marker="^", label="loss gap (held-out - train)")
    bottom.axhline(0.0, color="grey", linestyle=":")
    bottom.set(xlabel="sparsity (%)", ylabel="gap")
    bottom.legend(fontsize=8)
    return figure


def _plot_tpr(report: PrivacyReport, plt: Any) -> Any:
    series = {**_series(report.entries, "membership", lambda r: r.attack),
              **_series(report.entries, "extraction", lambda r: f"extraction: {r.attack}")}
    if not series:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="tight")
    for axis, metric, title in ((axes[0], "tpr_at_1pct_fpr", "TPR at 1% FPR"),
                                (axes[1], "tpr_at_0_1pct_fpr", "TPR at 0.1% FPR")):
        for number, (name, points) in enumerate(series.items()):
            _errorbar(axis, points, metric, name, number)
        axis.set(xlabel="sparsity (%)", title=title)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("true-positive rate (95% CI)")
    axes[0].legend(fontsize=8)
    return figure


def _plot_exposure(report: PrivacyReport, plt: Any) -> Any:
    series = _series(report.entries, "exposure", lambda r: r.repetitions)
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for number, (repetitions, points) in enumerate(sorted(series.items())):
        _errorbar(axis, points, "mean_exposure", f"inserted {repetitions}x", number)
    space = max(r.space_size for e in report.entries for r in e.exposure)
    axis.axhline(math.log2(space), color="grey", linestyle=":", label="log2 |R| (maximum)")
    axis.set(xlabel="sparsity (%)", ylabel="mean exposure (bits)", title="Canary exposure vs sparsity")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def _plot_roc(report: PrivacyReport, plt: Any) -> Any:
    attacks = list(dict.fromkeys(r.attack for e in report.entries for r in [*e.membership, *e.extraction]
                                 if r.roc_fpr is not None))
    if not attacks:
        return None
    columns = min(3, len(attacks))
    rows = math.ceil(len(attacks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4 * rows), squeeze=False)
    for axis, attack in zip(axes.flat, attacks, strict=False):
        nonmembers = []
        for entry in report.entries:
            for result in [*entry.membership, *entry.extraction]:
                if result.attack == attack and result.roc_fpr is not None:
                    axis.plot(np.maximum(result.roc_fpr, 1e-4), np.maximum(result.roc_tpr, 1e-4),
                              label=f"{entry.model_name} (AUC {result.auc.value:.3f})")
                    nonmembers.append(result.n_nonmembers)
        axis.plot([1e-4, 1], [1e-4, 1], color="grey", linestyle=":")
        # left of this line a TPR rests on fewer than MIN_FALSE_POSITIVES expected false positives: not a rate
        axis.axvspan(1e-4, min(1.0, smallest_resolved_fpr(min(nonmembers))), color="grey", alpha=0.15, linewidth=0,
                     label=f"unresolved (< {MIN_FALSE_POSITIVES} expected false positives)")
        axis.set(xscale="log", yscale="log", xlabel="FPR", ylabel="TPR", title=attack)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(attacks):]:
        axis.set_visible(False)
    figure.suptitle("ROC curves, log-log (Carlini et al. 2022; rates of 0 drawn at 1e-4)")
    figure.tight_layout()
    return figure
