"""The run report: one table (the dense model as the reference row, then each pruned level) and PNG plots of
accuracy, latency, attack success rate and membership-inference AUC against sparsity: the page a team pastes into a
review. Built only from the stages' done-markers, so it can be regenerated at any time."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.audit import intervals
from hfprune.training_args import epochs_text
from hfprune.utils.config import VERSION_KEY
from hfprune.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from hfprune.audit.compare import Comparison
    from hfprune.pipeline.results import StageResult
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
PLOTS_DIR = "plots"


@dataclass
class Point:
    """One model on a plot: x (sparsity), the value, and an optional confidence interval."""

    x: float
    value: float
    low: float | None = None
    high: float | None = None


@dataclass
class Series:
    """A line of a plot, and its value for the dense reference (drawn as a dashed horizontal line)."""

    label: str
    points: list[Point] = field(default_factory=list)
    reference: float | None = None
    reference_band: tuple[float, float] | None = None  # the dense value's interval, drawn as a band


@dataclass
class RunReport:
    """The dense reference and the pruned levels of one run (``hfprune run``) or sweep (``hfprune sweep``)."""

    recipe: Recipe
    dense: StageResult
    levels: list[StageResult]
    title: str | None = None

    # ---- values ----
    @property
    def quality_metric(self) -> str:
        return str(self.dense.quality["metric"])

    def x(self, stage: StageResult) -> float:
        """Where a level sits on the x axis: its sweep level, else the fraction of parameters removed."""
        return float(stage.level) if stage.level is not None else max(0.0, float(stage.sparsity["param_sparsity"]))

    @property
    def x_label(self) -> str:
        if any(stage.level is not None for stage in self.levels):
            fields = ", ".join(f.replace("_sparsity", "") for f in self.recipe.sweep.apply_to)
            return f"sparsity level ({fields} removed)"
        return "sparsity (fraction of parameters removed)"

    def recipes(self) -> list[str]:
        return list(dict.fromkeys(r.recipe for stage in self.all_stages for r in stage.model_audit.robustness))

    @property
    def all_stages(self) -> list[StageResult]:
        return [self.dense, *self.levels]

    @property
    def control(self) -> StageResult | None:
        """A level whose pruning removes nothing (a sweep's sparsity 0): trained like every level (epochs, examples,
        distillation), so it separates what pruning did from what the extra training did."""
        return next((stage for stage in self.levels if _prunes_nothing(stage)), None)

    def control_pairs(self) -> list[tuple[str, StageResult, StageResult]]:
        """(group name, the control, a pruned level) for every other level, when the sweep has a control."""
        from hfprune.audit.compare import CONTROL_GROUP

        control = self.control
        if control is None:
            return []
        return [(f"{stage.name} against {control.name} {CONTROL_GROUP}", control, stage)
                for stage in self.levels if stage is not control]

    def changes(self) -> dict[str, list[Comparison]]:
        """Each level against the dense model on the same examples, and against the control when there is one,
        Holm-adjusted across the whole report."""
        from hfprune.audit.compare import PairedRecords, compare_models, decide_groups

        def records(stage: StageResult) -> PairedRecords:
            return PairedRecords.of(stage.quality, stage.model_audit)

        dense = records(self.dense)
        groups = {stage.name: compare_models(dense, records(stage)) for stage in self.levels}
        groups.update({name: compare_models(records(control), records(stage))
                       for name, control, stage in self.control_pairs()})
        return decide_groups(groups)

    def changes_markdown(self) -> str:
        from hfprune.audit.compare import CONTROL_NAMES, CONTROL_NOTE, NO_CONTROL_NOTE, changes_markdown

        pairs = self.control_pairs()
        return changes_markdown(self.changes(), names={name: CONTROL_NAMES for name, _, _ in pairs},
                                note=CONTROL_NOTE if pairs else NO_CONTROL_NOTE)

    # ---- markdown ----
    def to_markdown(self) -> str:
        r = self.recipe
        title = self.title or f"hfprune: {model_display_name(r)} on {r.data.dataset}"
        lines = [f"# {title}", ""]
        if r.description:
            lines += [r.description, ""]
        lines += [self.changes_markdown(), self._settings_line(), "", "## Results", "", self.results_table(), "",
                  self._notes(), ""]
        lines += [f"![{name}]({PLOTS_DIR}/{file})" for name, file in self.plot_files().items()]
        lines += ["", "## Time", "", self._time_table(), ""]
        return "\n".join(lines)

    def _settings_line(self) -> str:
        r, q = self.recipe, self.dense.quality
        p = r.pruning
        dense = (f"Dense model: {r.model.name} as loaded, not fine-tuned; each pruned model starts from it and is "
                 f"pruned with {p.scoring} scores for {epochs_text(r.training.prune_epochs)} on {r.data.train_samples} "
                 f"{r.data.dataset} {r.data.train_split} examples" if r.pretrained_is_dense else
                 f"Dense model fine-tuned on {r.data.train_samples} {r.data.dataset} training examples (members of the "
                 f"privacy audit) for {epochs_text(r.training.dense_epochs)}; each pruned model starts from it and is "
                 f"pruned with {p.scoring} scores for {epochs_text(r.training.prune_epochs)} on the same examples")
        return (f"{dense}, distillation {'on' if r.distillation.enabled else 'off'}. {q['metric'].capitalize()} on "
                f"{q['n_examples']} {q['split']} examples; max length {r.data.max_length} tokens.")

    def results_table(self) -> str:
        """The results as a markdown table: the dense reference row, then one row per pruned level."""
        recipes = self.recipes()
        header = ["model", "params removed", "heads kept", "FFN kept", self.quality_metric, "latency ms (speedup)"]
        loyalty = any(stage.model_audit.loyalty is not None for stage in self.levels)
        header += [f"ASR {name}" for name in recipes] + (["loyalty"] if loyalty else [])
        header.append("MIA AUC (strongest attack)")
        exposure = any(stage.model_audit.max_exposure() for stage in self.all_stages)
        if exposure:
            header.append("canary exposure (bits)")
        rows = [self._row(stage, recipes, loyalty, exposure) for stage in self.all_stages]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])

    def _row(self, stage: StageResult, recipes: list[str], loyalty_column: bool, exposure: bool) -> list[str]:
        s, audit = stage.sparsity, stage.model_audit
        name = "**dense (reference)**" if stage.kind == "dense" else stage.name
        quality = _quality_cell(stage.quality)
        if stage.kind != "dense":
            quality += f" ({stage.quality['value'] - self.dense.quality['value']:+.4f})"
        latency = "" if stage.latency is None else f"{stage.latency['pruned_ms']:.1f} ({stage.latency['speedup']:.2f}x)"
        if stage.kind == "dense":
            latency = self._dense_latency_cell()
        asr = {r.recipe: r.attack_success_rate.format() for r in audit.robustness}
        loyalty = "" if audit.loyalty is None else audit.loyalty.label_loyalty.format()
        mia = audit.strongest_mia()
        row = [name, f"{100 * max(0.0, s['param_sparsity']):.1f}%", f"{s['heads_kept']}/{s['heads_total']}",
               f"{s['neurons_kept']}/{s['neurons_total']}", quality, latency,
               *[asr.get(r, "") for r in recipes]]
        if loyalty_column:
            row.append(loyalty if stage.kind != "dense" else "1 (reference)")
        row.append("" if mia is None else f"{self._mia_cell(audit, mia[0])} ({mia[0]})")
        if exposure:
            exposed = audit.privacy.exposure if audit.privacy is not None else []
            top = max(exposed, key=lambda r: r.repetitions) if exposed else None
            row.append("" if top is None else f"{top.exposure_cell()} ({top.repetitions} repetitions)")
        return row

    @staticmethod
    def _mia_cell(audit: Any, attack: str) -> str:
        return next(r.auc.format() for r in audit.privacy.membership if r.attack == attack)

    def _dense_latency_cell(self) -> str:
        values = [stage.latency["dense_ms"] for stage in self.levels if stage.latency]
        return f"{statistics.median(values):.1f} (1.00x)" if values else ""

    def _notes(self) -> str:
        plan = self.recipe.audits
        parts = []
        if self.recipes():
            rob = plan.robustness
            counts = ", ".join(f"{name} {rob.examples_for(name)}" for name in self.recipes())
            parts.append(f"ASR = attack success rate (share of correctly classified examples the attack flips) on "
                         f"one seeded validation sample per recipe ({counts} examples), query budget "
                         f"{rob.query_budget or 'unlimited'}; loyalty = share of clean examples labelled as the "
                         "dense model labels them.")
        if plan.privacy.enabled:
            parts.append(f"MIA AUC: membership inference on {self.recipe.data.train_samples} members vs "
                         f"{plan.privacy.n_nonmembers} held-out non-members (0.5 = no leakage); attacks "
                         f"{', '.join(plan.privacy.attacks)}, the strongest shown.")
            if plan.privacy.n_shadows:
                from hfprune.audit.privacy.report import SHADOW_MODES

                parts.append(f"Reference and LiRA: {plan.privacy.n_shadows} shadow model(s) trained on examples "
                             f"disjoint from the audited ones (shadows: {plan.privacy.shadows}), with "
                             f"{SHADOW_MODES[plan.privacy.shadows]}.")
        if any(stage.latency for stage in self.levels):
            lat = next(stage.latency for stage in self.levels if stage.latency)
            threads = f"{lat['threads']} torch thread" + ("s" if lat["threads"] != 1 else "")
            device = lat.get("device", "cpu")  # stages recorded before the device was, were timed on the CPU
            parts.append(f"Latency: median {device.upper()} forward at sequence length {lat['seq_len']}, "
                         f"batch {lat['batch_size']}, "
                         f"{threads}, dense and pruned timed interleaved ({lat['rounds']} rounds).")
        parts.append(self._interval_note())
        return " ".join(parts)

    def _interval_note(self) -> str:
        return ("Intervals are 95%: exact (Clopper-Pearson) for accuracy and attack success rates, BCa bootstrap for "
                "AUC, studentized bootstrap for mean exposure (from "
                f"{intervals.MIN_EXPOSURE_INTERVAL_N} canaries; fewer are listed). Per-model details: each stage's "
                "audit/audit.md.")

    def _time_table(self) -> str:
        keys = ["training", "evaluation", "audit"]
        keys += ["shadows"] if any("shadows" in stage.seconds for stage in self.all_stages) else []
        lines = ["| stage | " + " | ".join(f"{key} s" for key in keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for stage in self.all_stages:
            sec = stage.seconds
            cells = [f"{sec[k]:.0f}" if k in sec else "" for k in keys]
            lines.append(f"| {stage.name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    # ---- JSON ----
    def to_dict(self) -> dict[str, Any]:
        from hfprune import __version__

        return {"kind": "hfprune_run_report", VERSION_KEY: __version__, "recipe": self.recipe.to_dict(),
                "dense": self.dense.to_dict(), "levels": [stage.to_dict() for stage in self.levels],
                "changes": {name: [c.to_dict() for c in found] for name, found in self.changes().items()}}

    # ---- plots ----
    def plot_specs(self) -> dict[str, tuple[str, Callable[[], list[Series]]]]:
        """Plot name -> (y label, series builder); plots with no data are skipped."""
        quality = self.quality_metric
        specs = {
            f"{quality}_vs_sparsity": (quality, self._quality_series),
            "latency_vs_sparsity": ("forward latency (ms, seq 128, batch 1)", self._latency_series),
            "attack_success_vs_sparsity": ("attack success rate", self._asr_series),
            "mia_auc_vs_sparsity": ("membership inference AUC (strongest attack)", self._mia_series),
        }
        if any(stage.model_audit.max_exposure() for stage in self.all_stages):
            specs["canary_exposure_vs_sparsity"] = ("canary exposure (bits), most repeated", self._exposure_series)
        return specs

    def plot_files(self) -> dict[str, str]:
        return {name: f"{name}.png" for name, (_, build) in self.plot_specs().items() if _has_data(build())}

    def _quality_series(self) -> list[Series]:
        return [self._metric_series(self.quality_metric, lambda stage: _quality_estimate(stage.quality))]

    def _latency_series(self) -> list[Series]:
        levels = [s for s in self.levels if s.latency]
        points = [Point(self.x(s), float(s.latency["pruned_ms"])) for s in levels]  # type: ignore[index]
        dense = [s.latency["dense_ms"] for s in levels]  # type: ignore[index]
        return [Series("pruned", points, statistics.median(dense) if dense else None)]

    def _asr_series(self) -> list[Series]:
        series = []
        for recipe in self.recipes():
            def metric(stage: StageResult, recipe: str = recipe) -> Any:
                return next((r.attack_success_rate for r in stage.model_audit.robustness if r.recipe == recipe), None)
            series.append(self._metric_series(recipe, metric))
        return series

    def _mia_series(self) -> list[Series]:
        def metric(stage: StageResult) -> Any:
            audit = stage.model_audit
            best = audit.strongest_mia()
            return None if best is None else next(r.auc for r in audit.privacy.membership if r.attack == best[0])
        return [self._metric_series("strongest attack", metric)]

    def _exposure_series(self) -> list[Series]:
        def metric(stage: StageResult) -> Any:
            audit = stage.model_audit
            if audit.privacy is None or not audit.privacy.exposure:
                return None
            return max(audit.privacy.exposure, key=lambda r: r.repetitions).mean_exposure
        return [self._metric_series("mean exposure", metric)]

    def _metric_series(self, label: str, metric: Callable[[StageResult], Any]) -> Series:
        points = []
        for stage in self.levels:
            value = metric(stage)
            if value is not None and not math.isnan(value.value):
                points.append(Point(self.x(stage), value.value, value.low, value.high))
        reference = metric(self.dense)
        if reference is None:
            return Series(label, points)
        band = (reference.low, reference.high) if reference.has_interval else None
        return Series(label, points, reference.value, band)

    def save_plots(self, directory: Path) -> dict[str, Path]:
        written = {}
        for name, (y_label, build) in self.plot_specs().items():
            series = build()
            if not _has_data(series):
                continue
            path = directory / PLOTS_DIR / f"{name}.png"
            atomic_write_bytes(path, _render(series, self.x_label, y_label, chance=0.5 if "mia" in name else None))
            written[f"plot:{name}"] = path
        return written

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write ``report.md``, ``report.json`` and ``plots/*.png`` into ``directory``; returns role -> path."""
        directory = Path(directory)
        written = self.save_plots(directory)
        atomic_write_json(directory / REPORT_JSON, self.to_dict())
        atomic_write_text(directory / REPORT_MD, self.to_markdown())
        written.update({"json": directory / REPORT_JSON, "markdown": directory / REPORT_MD})
        logger.info("report written to %s", directory / REPORT_MD)
        return written


def model_display_name(recipe: Recipe) -> str:
    """The model as a report names it: the embedded MiniLM's Hub name for its aliases, else the recipe's name."""
    from hfprune.models import DEFAULT_MODEL, DEFAULT_MODEL_ALIASES

    name = recipe.model.name
    if name is None:
        return "a GPT-2 trained here"
    return DEFAULT_MODEL if name.lower() in DEFAULT_MODEL_ALIASES else name


def _quality_estimate(quality: dict[str, Any]) -> Any:
    """The quality as a MetricWithCI: an accuracy recorded per example gets its exact interval."""
    from hfprune.audit.results import MetricWithCI
    from hfprune.audit.summaries import proportion_estimate

    per_example = quality.get("per_example")
    if quality["metric"] != "accuracy" or not per_example:
        return MetricWithCI(float(quality["value"]))
    return proportion_estimate(int(round(sum(per_example))), len(per_example))


def _quality_cell(quality: dict[str, Any]) -> str:
    return _quality_estimate(quality).format(4)


def _has_data(series: list[Series]) -> bool:
    return any(s.points for s in series)


def _render(series: list[Series], x_label: str, y_label: str, chance: float | None = None) -> bytes:
    """A PNG: one line per series (with CI error bars when known), its dense reference as a dashed line."""
    from hfprune.utils.plots import axis_png, pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    try:
        for number, line in enumerate(series):
            color = f"C{number}"
            points = sorted(line.points, key=lambda p: p.x)
            xs, ys = [p.x for p in points], [p.value for p in points]
            errors = [[p.value - (p.low if p.low is not None else p.value) for p in points],
                      [(p.high if p.high is not None else p.value) - p.value for p in points]]
            axis.errorbar(xs, ys, yerr=errors, marker="os^Dv"[number % 5], capsize=3, color=color, label=line.label)
            if line.reference_band is not None:
                axis.axhspan(*line.reference_band, color=color, alpha=0.12, linewidth=0)
            if line.reference is not None:
                axis.axhline(line.reference, color=color, linestyle="--", alpha=0.7,
                             label=f"dense reference ({line.label})" if len(series) > 1 else "dense reference")
        if chance is not None:
            axis.axhline(chance, color="grey", linestyle=":", label="chance")
        largest = max((p.x for line in series for p in line.points), default=0.0)
        axis.set_xlim(-0.02, min(1.0, largest + 0.1))  # from no pruning, so one level still reads as a trend
        return axis_png(figure, axis, x_label, y_label)
    finally:
        plt.close(figure)


def _prunes_nothing(stage: StageResult) -> bool:
    from hfprune.errors import ConfigError
    from hfprune.pruning.config import PruningConfig

    if stage.kind != "pruned" or not stage.pruning:
        return False
    try:
        return PruningConfig.from_dict(stage.pruning).prunes_nothing
    except ConfigError:  # settings this version no longer reads: not taken for a control
        return False
