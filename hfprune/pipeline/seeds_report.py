"""The report of a run with several seeds (:mod:`hfprune.pipeline.seeds`): the one-seed report's sections, each
number now the mean over the seeds with its spread (sd, min-max) and the count of seeds behind it, and "What pruning
changed" from tests that use the seeds (:func:`hfprune.audit.seeds.compare_seeds`).

Accuracy and attack success are tested once, pooling the seeds over examples; no test pools an AUC or an exposure
over seeds, so those are tested once per seed. Holm's correction runs across every test of the report. Plots draw
the mean with the seeds' range (min-max) as error bars, the dense mean as a line and its range as a band.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self

from hfprune.audit.seeds import SeedSpread, seed_spread
from hfprune.pipeline.report import Point, RunReport, Series
from hfprune.utils.config import VERSION_KEY

if TYPE_CHECKING:
    from hfprune.audit.compare import Comparison
    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.seeds import SeedRuns

PUBLISH_RULE = ("the seed of median {metric} over the {n} seeds, the lower middle one for an even count: a typical "
                "run, not the luckiest")


@dataclass
class SeedsReport(RunReport):
    """``dense``/``levels`` are the first seed's (labels, x positions); ``seed_dense[i]`` and ``seed_levels[i][j]``
    are seed ``seeds[i]``'s."""

    seeds: list[int] = field(default_factory=list)
    seed_dense: list[StageResult] = field(default_factory=list)
    seed_levels: list[list[StageResult]] = field(default_factory=list)
    level_dirs: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, runs: SeedRuns, title: str | None = None) -> Self:
        return cls(runs.recipe, runs.dense[0], runs.levels[0], title, seeds=list(runs.seeds),
                   seed_dense=list(runs.dense), seed_levels=list(runs.levels), level_dirs=list(runs.level_dirs))

    # ---- values ----
    def stage_runs(self, stage: StageResult) -> list[StageResult]:
        """The stage of every seed: the dense stages, or level ``stage`` (a first-seed level) of each seed."""
        if stage.kind == "dense":
            return self.seed_dense
        index = next(j for j, level in enumerate(self.levels) if level is stage)
        return [levels[index] for levels in self.seed_levels]

    def stage_metrics(self, stage: StageResult) -> dict[str, float]:
        """Metric -> value of one seed's stage: what the table, JSON and model card average over seeds."""
        s, audit = stage.sparsity, stage.model_audit
        values = {"params removed": max(0.0, float(s["param_sparsity"])), "heads kept": float(s["heads_kept"]),
                  "FFN neurons kept": float(s["neurons_kept"]), stage.quality["metric"]: float(stage.quality["value"])}
        if stage.latency:
            values["latency ms"] = float(stage.latency["pruned_ms"])
        values.update({f"ASR {r.recipe}": r.attack_success_rate.value for r in audit.robustness})
        if audit.loyalty is not None:
            values["loyalty"] = audit.loyalty.label_loyalty.value
        if audit.privacy is not None:
            values.update({f"MIA AUC ({r.attack})": r.auc.value for r in audit.privacy.membership})
            values.update({f"canary exposure, bits ({r.repetitions} repetitions)": r.mean_exposure.value
                           for r in audit.privacy.exposure})
        return {name: value for name, value in values.items() if not math.isnan(value)}

    def dense_latency(self, seed_index: int) -> float | None:
        """The dense model's latency in one seed: the median of its levels' interleaved timings."""
        import statistics

        timed = [level.latency["dense_ms"] for level in self.seed_levels[seed_index] if level.latency]
        return float(statistics.median(timed)) if timed else None

    def spreads(self, stage: StageResult) -> dict[str, tuple[SeedSpread, dict[int, float]]]:
        """Metric -> (its spread over the seeds that measured it, seed -> value)."""
        per_seed: dict[str, dict[int, float]] = {}
        for i, (seed, run) in enumerate(zip(self.seeds, self.stage_runs(stage), strict=True)):
            values = self.stage_metrics(run)
            latency = self.dense_latency(i) if stage.kind == "dense" else None
            if latency is not None:
                values["latency ms"] = latency
            for name, value in values.items():
                per_seed.setdefault(name, {})[seed] = value
        return {name: (seed_spread(list(by_seed.values())), by_seed) for name, by_seed in per_seed.items()}

    def published_seed(self, index: int) -> int:
        """The seed of level ``index`` whose quality is the median (lower middle for an even count)."""
        quality = [(float(levels[index].quality["value"]), seed) for seed, levels in zip(self.seeds, self.seed_levels,
                                                                                         strict=True)]
        return sorted(quality)[(len(quality) - 1) // 2][1]

    # ---- tests ----
    @functools.cached_property
    def seed_changes(self) -> dict[str, dict[str, list[Comparison]]]:
        """Level (or level-against-control group) -> metric -> its comparisons (one pooled, or one per seed),
        Holm-adjusted across the report."""
        from hfprune.audit.compare import decide
        from hfprune.audit.seeds import compare_seeds

        found = {name: compare_seeds(self._records(self.stage_runs(reference)), self._records(self.stage_runs(level)),
                                     self.seeds) for name, reference, level in self._pairs()}
        keys = [(level, metric) for level, metrics in found.items() for metric, cs in metrics.items() for _ in cs]
        decided = iter(decide([c for metrics in found.values() for cs in metrics.values() for c in cs]))
        result: dict[str, dict[str, list[Comparison]]] = {level: {} for level in found}
        for level, metric in keys:
            result[level].setdefault(metric, []).append(next(decided))
        return result

    @functools.cached_property
    def difference_spreads(self) -> dict[str, dict[str, SeedSpread]]:
        """Level (or group) -> metric -> the spread of the per-seed differences (candidate - reference, same seed)."""
        from hfprune.audit.seeds import difference_spreads

        return {name: difference_spreads(self._records(self.stage_runs(reference)),
                                         self._records(self.stage_runs(level)))
                for name, reference, level in self._pairs()}

    def _pairs(self) -> list[tuple[str, StageResult, StageResult]]:
        """(group name, reference, candidate): each level against the dense model, then against the control."""
        return [(level.name, self.dense, level) for level in self.levels] + self.control_pairs()

    @staticmethod
    def _records(stages: list[StageResult]) -> list[Any]:
        from hfprune.audit.compare import PairedRecords

        return [PairedRecords.of(stage.quality, stage.model_audit) for stage in stages]

    def changes(self) -> dict[str, list[Comparison]]:
        return {level: [c for cs in metrics.values() for c in cs] for level, metrics in self.seed_changes.items()}

    def changes_markdown(self) -> str:
        from hfprune.audit.compare import (
            ALPHA,
            CONTROL_NAMES,
            CONTROL_NOTE,
            NO_CONTROL_NOTE,
            estimate_note,
            member_loss_note,
        )
        from hfprune.audit.seeds import PER_SEED_METRICS

        controlled = {name for name, _, _ in self.control_pairs()}

        total = sum(len(found) for found in self.changes().values())
        seeds = ", ".join(map(str, self.seeds))
        lines = ["## What pruning changed", "",
                 f"Each pruned model against the dense one, both trained once for each of {len(self.seeds)} seeds "
                 f"({seeds}) and scored on the same examples (member split, evaluation sample and canaries of split "
                 f"seed {self.recipe.training.member_split_seed}; the attack sample of audits.robustness.seed). "
                 "Accuracy, attack success and the loss on members and on non-members: one test pooling the seeds "
                 "(each example's outcome or loss averaged over the seeds, t-test over examples); MIA and "
                 "extraction AUCs and canary exposure: no test pools them over seeds, so "
                 f"one test per seed. Verdicts at alpha {ALPHA} after Holm's correction across the {total} tests of "
                 "this report; after each metric, the spread over seeds of the per-seed difference (pruned - dense "
                 "of the same seed). *No detectable change* means these seeds and examples cannot tell the models "
                 f"apart, not that they are equal.{estimate_note(self.changes())}"
                 f"{member_loss_note(self.changes())}{CONTROL_NOTE if controlled else NO_CONTROL_NOTE}", ""]
        if not total:
            return "\n".join(lines[:2] + ["No per-example records to compare.", ""])
        for level, metrics in self.seed_changes.items():
            spreads = self.difference_spreads[level]
            if len(metrics) and len(self.levels) > 1:
                lines += [f"**{level}**", ""]
            names = CONTROL_NAMES if level in controlled else ("dense", "pruned")
            for metric, comparisons in metrics.items():
                what = "median shift" if comparisons[0].estimate else "difference"
                spread = _spread_text(spreads.get(metric), what)
                if metric.startswith(PER_SEED_METRICS):
                    lines.append(f"- {metric}: one test per seed; {spread}")
                    lines += [f"  - {c.line(names=names)}" for c in comparisons]
                else:
                    lines.append(f"- {comparisons[0].line(names=names)}; {spread}")
            lines.append("")
        publish = [f"{level.name}: `{self._model_dir(j, self.published_seed(j))}`"
                   for j, level in enumerate(self.levels)]
        lines += [f"Model to publish: {'; '.join(publish)} "
                  f"({PUBLISH_RULE.format(metric=self.quality_metric, n=len(self.seeds))}).", ""]
        return "\n".join(lines)

    def _model_dir(self, index: int, seed: int) -> str:
        from hfprune.pipeline.seed_layout import seed_dir

        return f"{seed_dir(seed)}/{self.level_dirs[index]}/model"

    # ---- markdown ----
    def _settings_line(self) -> str:
        return (super()._settings_line() + f" Seeds {', '.join(map(str, self.seeds))}: the dense model and each "
                "pruned level trained once per seed (initialisation, pruning, data order), each in seed-<s>/.")

    def results_table(self) -> str:
        recipes = self.recipes()
        columns = ["params removed", "heads kept", "FFN neurons kept", self.quality_metric, "latency ms",
                   *[f"ASR {name}" for name in recipes]]
        loyalty = any(stage.model_audit.loyalty is not None for stage in self.levels)
        columns += ["loyalty"] if loyalty else []
        mia = self._strongest_mia()
        columns += [mia] if mia else []
        exposure = self._top_exposure()
        columns += [exposure] if exposure else []
        lines = ["Each cell: the mean over the seeds that measured it (sd, min-max, and how many seeds).", "",
                 "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for stage in self.all_stages:
            spreads = self.spreads(stage)
            name = "**dense (reference)**" if stage.kind == "dense" else stage.name
            cells = []
            for column in columns:
                if column == "loyalty" and stage.kind == "dense":
                    cells.append("1 (reference)")
                    continue
                found = spreads.get(column)
                digits = 1 if column in ("heads kept", "FFN neurons kept", "latency ms") else 4 if (
                    column == self.quality_metric) else 3
                cells.append("" if found is None else _spread_cell(found[0], digits, column == "params removed"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _strongest_mia(self) -> str | None:
        """The MIA AUC column: the attack with the highest mean AUC on the dense model."""
        dense = {name: spread.mean for name, (spread, _) in self.spreads(self.dense).items()
                 if name.startswith("MIA AUC")}
        return max(dense, key=lambda name: dense[name]) if dense else None

    def _top_exposure(self) -> str | None:
        exposure = self.dense.model_audit.max_exposure()
        return None if exposure is None else f"canary exposure, bits ({exposure[0]} repetitions)"

    def _interval_note(self) -> str:
        return (f"Over {len(self.seeds)} seeds: each number is a mean over seeds with the sd and range of the per-seed "
                "values (each seed's own intervals are in its stages' audit/audit.md); the plots' error bars and "
                "the dense band are the range over seeds.")

    def _time_table(self) -> str:
        lines = [f"| stage | training s | evaluation s | audit s (sums over {len(self.seeds)} seeds) |",
                 "|---|---|---|---|"]
        for stage in self.all_stages:
            runs = self.stage_runs(stage)
            cells = [f"{sum(run.seconds.get(key, 0.0) for run in runs):.0f}" if any(key in run.seconds for run in runs)
                     else "" for key in ("training", "evaluation", "audit")]
            lines.append(f"| {stage.name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    # ---- plots: the mean over seeds, the range as error bars ----
    def _metric_series(self, label: str, metric: Callable[[StageResult], Any]) -> Series:
        def spread(stage: StageResult) -> SeedSpread | None:
            values = [v.value for v in map(metric, self.stage_runs(stage)) if v is not None and not math.isnan(v.value)]
            return seed_spread(values) if values else None

        points = [Point(self.x(stage), s.mean, s.low, s.high) for stage in self.levels
                  if (s := spread(stage)) is not None]
        reference = spread(self.dense)
        if reference is None:
            return Series(label, points)
        return Series(label, points, reference.mean, (reference.low, reference.high) if reference.n > 1 else None)

    def _latency_series(self) -> list[Series]:
        points, dense = [], []
        for stage in self.levels:
            found = self.spreads(stage).get("latency ms")
            if found is not None:
                points.append(Point(self.x(stage), found[0].mean, found[0].low, found[0].high))
        dense = self.spreads(self.dense).get("latency ms")
        return [Series("pruned", points, dense[0].mean if dense else None)]

    # ---- JSON ----
    def to_dict(self) -> dict[str, Any]:
        from hfprune import __version__
        from hfprune.pipeline.results import DENSE_STAGE
        from hfprune.pipeline.seed_layout import seed_dir

        return {
            "kind": "hfprune_seeds_report", VERSION_KEY: __version__, "recipe": self.recipe.to_dict(),
            "seeds": self.seeds, "split_seed": self.recipe.training.member_split_seed,
            "stages": {str(seed): [f"{seed_dir(seed)}/{name}" for name in (DENSE_STAGE, *self.level_dirs)]
                       for seed in self.seeds},
            "metrics": {stage.name: self._metrics_dict(stage) for stage in self.all_stages},
            "changes": {name: [c.to_dict() for c in found] for name, found in self.changes().items()},
            "difference_spreads": {level: {metric: _plain(asdict(spread)) for metric, spread in found.items()}
                                   for level, found in self.difference_spreads.items()},
            "published": {level.name: self._published(j) for j, level in enumerate(self.levels)},
        }

    def _metrics_dict(self, stage: StageResult) -> dict[str, Any]:
        return {name: {**_plain(asdict(spread)), "per_seed": {str(seed): value for seed, value in by_seed.items()}}
                for name, (spread, by_seed) in self.spreads(stage).items()}

    def _published(self, index: int) -> dict[str, Any]:
        seed = self.published_seed(index)
        return {"seed": seed, "model_dir": self._model_dir(index, seed),
                "rule": PUBLISH_RULE.format(metric=self.quality_metric, n=len(self.seeds))}

    def level_summary(self, index: int) -> dict[str, Any]:
        """What a pruned model's card reports about the seeds of its level (``hfprune_results.json``)."""
        level, changes = self.levels[index], self.changes()
        against_control = next((name for name, _, stage in self.control_pairs() if stage is level), None)
        return {"seeds": self.seeds, "split_seed": self.recipe.training.member_split_seed,
                "published": self._published(index), "dense": self._metrics_dict(self.dense),
                "pruned": self._metrics_dict(level),
                "changes": [c.to_dict() for c in changes[level.name]],
                "control_changes": [c.to_dict() for c in changes.get(against_control, [])],
                "difference_spreads": {metric: _plain(asdict(spread))
                                       for metric, spread in self.difference_spreads[level.name].items()}}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """NaN (the sd of one seed) as null: JSON has no NaN."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


def _spread_cell(spread: SeedSpread, digits: int, percent: bool = False) -> str:
    """"0.8125 (sd 0.0100, 0.8000 to 0.8250, 3 seeds)", or "72.0 (all 3 seeds)" when every seed measured the same; a
    fraction shown as a percentage with ``percent``."""
    scale, unit, digits = (100.0, "%", 1) if percent else (1.0, "", digits)
    mean, sd, low, high = (scale * v for v in (spread.mean, spread.sd, spread.low, spread.high))
    if spread.n == 1:
        return f"{mean:.{digits}f}{unit} (1 seed)"
    if spread.low == spread.high:  # the same in every seed (a shape, a count): no spread to show
        return f"{mean:.{digits}f}{unit} (all {spread.n} seeds)"
    return f"{mean:.{digits}f}{unit} (sd {sd:.{digits}f}, {low:.{digits}f} to {high:.{digits}f}, {spread.n} seeds)"


def _spread_text(spread: SeedSpread | None, what: str = "difference") -> str:
    """The across-seed spread of a per-seed ``what`` (a difference, or a Wilcoxon test's median shift)."""
    if spread is None:
        return f"no per-seed {what} recorded"
    if spread.n == 1:
        return f"per-seed {what} {spread.mean:+.3f} (1 seed)"
    return (f"per-seed {what}s: mean {spread.mean:+.3f}, sd {spread.sd:.3f}, {spread.low:+.3f} to "
            f"{spread.high:+.3f}, {spread.n} seeds")
