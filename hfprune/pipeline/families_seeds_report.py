"""The report of a families sweep over seeds (:mod:`hfprune.pipeline.families_seeds`): the seeds report
(:class:`~hfprune.pipeline.seeds_report.SeedsReport`: "What pruning changed" from the pooled paired tests, Holm
across the report, the results table as means over seeds) with the families section of
:class:`~hfprune.pipeline.families_report.FamiliesReport`, each of its numbers the mean over the seeds with its sd,
range and seed count: remaining prunable weights, parameters, size on disk and dense- and sparse-kernel latency (each
seed's ``efficiency.json``), and the equal-parameter check of every seed. Plots: one line per family against the
achieved parameter sparsity (mean over seeds), the seeds' range as error bars.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from hfprune.audit.seeds import SeedSpread, seed_spread
from hfprune.pipeline.families import equal_parameter_check, family_of, remaining
from hfprune.pipeline.families_report import MB, X_LABEL, FamiliesReport, save_panel, with_families_section
from hfprune.pipeline.report import Point, Series
from hfprune.pipeline.seeds_report import SeedsReport, _spread_cell

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.seeds import SeedRuns

REMAINING = "remaining prunable weights"
PARAMS = "params (M)"
NONZERO = "nonzero params (M)"
SIZE = "safetensors MB"
COMPRESSED = "compressed MB (values+bitmask)"
CSR = "CSR kernel"


def _dense_kernel(batch: str) -> str:
    return f"ms b{batch} dense kernel"


def _sparse_kernel(batch: str) -> str:
    return f"ms b{batch} {CSR}"


@dataclass
class FamiliesSeedsReport(SeedsReport):
    """``seed_efficiency[i]``: seed ``seeds[i]``'s efficiency records (level name -> ``efficiency.json``)."""

    seed_efficiency: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def of(cls, runs: SeedRuns, title: str | None = None) -> Self:
        report = super().of(runs, title)
        report.seed_efficiency = list(runs.extras)
        return report

    @functools.cached_property
    def seed_reports(self) -> list[FamiliesReport]:
        """Each seed's own families report (its levels, efficiency records and equal-parameter check)."""
        return [FamiliesReport(self.recipe, dense, levels, efficiency=efficiency) for dense, levels, efficiency
                in zip(self.seed_dense, self.seed_levels, self.seed_efficiency, strict=True)]

    @property
    def x_label(self) -> str:
        return X_LABEL

    def x(self, stage: StageResult) -> float:
        """The achieved parameter sparsity of a level, the mean over the seeds (0 for the dense model)."""
        return statistics.fmean(1 - remaining(dense, run).fraction
                                for dense, run in zip(self.seed_dense, self.stage_runs(stage), strict=True))

    def families(self) -> list[str]:
        return self.seed_reports[0].families()

    def batch_sizes(self) -> list[str]:
        return sorted({b for report in self.seed_reports for b in report._batch_sizes()}, key=int)

    # ---- values ----
    def family_values(self, index: int, stage: StageResult) -> dict[str, float]:
        """Metric -> value of seed ``seeds[index]``'s copy of ``stage``: remaining prunable weights, parameters,
        size on disk and latency (from that seed's ``efficiency.json``)."""
        dense, run = self.seed_dense[index], self.stage_runs(stage)[index]
        efficiency = self.seed_efficiency[index]
        values = {REMAINING: remaining(dense, run).fraction, PARAMS: int(run.sparsity["params"]) / 1e6,
                  NONZERO: int(run.sparsity["nonzero_params"]) / 1e6}
        if run.kind == "dense":
            records = list(efficiency.values())
            if records:
                values[SIZE] = records[0]["dense_safetensors_bytes"] / MB
            for batch in self.batch_sizes():
                timed = [r["latency"]["batches"][batch]["dense_ms"] for r in records
                         if batch in r["latency"]["batches"]]
                if timed:  # as in the one-seed table: the median of the dense timings interleaved with each level
                    values[_dense_kernel(batch)] = statistics.median(timed)
            return values
        record = efficiency.get(run.name)
        if record is None:
            return values
        values.update({SIZE: record["safetensors_bytes"] / MB, COMPRESSED: record["compressed_bytes"] / MB})
        for batch, entry in record["latency"]["batches"].items():
            values[_dense_kernel(batch)] = entry["pruned_ms"]
            values[f"speedup b{batch} dense kernel"] = entry["speedup_dense_kernel"]
            if "sparse_ms" in entry:
                values[_sparse_kernel(batch)] = entry["sparse_ms"]
                values[f"speedup b{batch} {CSR}"] = entry["speedup_sparse_kernel"]
        return values

    def spreads(self, stage: StageResult) -> dict[str, tuple[SeedSpread, dict[int, float]]]:
        """The seeds report's metrics, and the families' (:meth:`family_values`)."""
        per_seed: dict[str, dict[int, float]] = {}
        for index, seed in enumerate(self.seeds):
            for name, value in self.family_values(index, stage).items():
                per_seed.setdefault(name, {})[seed] = value
        found = super().spreads(stage)
        found.update({name: (seed_spread(list(by_seed.values())), by_seed) for name, by_seed in per_seed.items()})
        return found

    # ---- the families table ----
    def families_table(self) -> str:
        """Family x parameter sparsity, each cell the mean over seeds (sd, min-max, seed count)."""
        columns: list[tuple[str, int, bool]] = [(REMAINING, 1, True), (PARAMS, 3, False), (NONZERO, 3, False),
                                                (self.quality_metric, 4, False), (SIZE, 1, False),
                                                (COMPRESSED, 1, False)]
        for batch in self.batch_sizes():
            columns += [(_dense_kernel(batch), 1, False), (f"speedup b{batch} dense kernel", 2, False),
                        (_sparse_kernel(batch), 1, False), (f"speedup b{batch} {CSR}", 2, False)]
        columns += [(f"ASR {name}", 3, False) for name in self.recipes()]
        columns += [("loyalty", 3, False)] if any(s.model_audit.loyalty is not None for s in self.levels) else []
        mia = self._strongest_mia()
        columns += [(mia, 3, False)] if mia else []
        header = ["family", "target p", *(name for name, _, _ in columns)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for stage in [self.dense, *self.seed_reports[0]._ordered_levels()]:
            spreads = self.spreads(stage)
            dense = stage.kind == "dense"
            row = ["**dense (reference)**" if dense else family_of(stage.name), "0" if dense else f"{stage.level:.2f}"]
            for name, digits, percent in columns:
                found = spreads.get(name)
                if found is not None:
                    row.append(_spread_cell(found[0], digits, percent))
                elif name == "loyalty" and dense:
                    row.append("1 (reference)")
                elif name.endswith(CSR) and not dense and SIZE in spreads:  # measured, but nothing to sparsify
                    row.append("n/a (no zeroed weights)")
                else:
                    row.append("")
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def equal_check_lines(self) -> str:
        """Each seed's equal-parameter check (its levels' achieved remaining shares per target p)."""
        return "\n".join(line.replace("- p = ", f"- seed {seed}, p = ", 1)
                         for seed, report in zip(self.seeds, self.seed_reports, strict=True)
                         for line in report.equal_check_lines().splitlines())

    # ---- markdown / JSON ----
    def to_markdown(self) -> str:
        every_seed = FamiliesReport(self.recipe, self.dense, self.levels, efficiency={
            f"{seed}/{name}": record for seed, efficiency in zip(self.seeds, self.seed_efficiency, strict=True)
            for name, record in efficiency.items()})
        return with_families_section(super().to_markdown(), [
            self.seed_reports[0]._definition(), "",
            f"Each cell: the mean over the {len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}) that measured "
            "it (sd, min-max, and how many seeds); each seed's own table is in its seed-<s>/sweep/report.md.", "",
            self.families_table(), "", every_seed._efficiency_notes() + " Each seed's models are timed in that "
            "seed's run; a latency cell is the mean over seeds of those medians.", "",
            "Achieved remaining parameters, per seed (from each level's SparsityReport):", "",
            self.equal_check_lines()])

    def to_dict(self) -> dict[str, Any]:
        payload = super().to_dict()
        payload["kind"] = "hfprune_families_seeds_report"
        payload["efficiency"] = {str(seed): e for seed, e in zip(self.seeds, self.seed_efficiency, strict=True)}
        payload["equal_parameters"] = {str(seed): equal_parameter_check(dense, levels) for seed, dense, levels
                                       in zip(self.seeds, self.seed_dense, self.seed_levels, strict=True)}
        return payload

    # ---- plots: one line per family, the mean over seeds with the range as error bars ----
    def family_series(self, metric: str, suffix: str = "", dense_metric: str | None = None) -> list[Series]:
        series = []
        for name in self.families():
            points = []
            for stage in [self.dense, *(s for s in self.levels if family_of(s.name) == name)]:
                found = self.spreads(stage).get((dense_metric or metric) if stage.kind == "dense" else metric)
                if found is not None:
                    points.append(Point(self.x(stage), found[0].mean, found[0].low, found[0].high))
            series.append(Series(name + suffix, points if len(points) > 1 else []))
        return series

    def plot_specs(self) -> dict[str, tuple[str, Callable[[], list[Series]]]]:
        specs: dict[str, tuple[str, Callable[[], list[Series]]]] = {
            f"{self.quality_metric}_vs_param_sparsity": (self.quality_metric,
                                                         lambda: self.family_series(self.quality_metric))}
        mia = self._strongest_mia()
        if mia:
            specs["mia_auc_vs_param_sparsity"] = (f"{mia}, the strongest on the dense model",
                                                  lambda: self.family_series(mia))
        for recipe in self.recipes():
            specs[f"attack_success_{recipe}_vs_param_sparsity"] = (
                f"attack success rate ({recipe})", lambda recipe=recipe: self.family_series(f"ASR {recipe}"))
        for b in self.batch_sizes():
            specs[f"latency_b{b}_vs_param_sparsity"] = (f"forward ms (batch {b})", lambda b=b: [
                *self.family_series(_dense_kernel(b), " (dense kernel)"),
                *(s for s in self.family_series(_sparse_kernel(b), " (CSR kernel)", _dense_kernel(b)) if s.points)])
        return specs

    def save_plots(self, directory: Path) -> dict[str, Path]:
        return save_panel(super().save_plots(directory), directory)
