"""The families sweep report: structured vs weight vs combined pruning at equal remaining parameters, with accuracy,
size on disk, dense- and sparse-kernel CPU latency, robustness and leakage side by side, plus plots of each metric
against parameter sparsity (one line per family). Built from the stages' done-markers and ``efficiency.json``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.pipeline.families import equal_parameter_check, family_of, remaining
from hfprune.pipeline.report import PLOTS_DIR, Point, RunReport, Series
from hfprune.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from hfprune.pipeline.results import StageResult

FAMILIES_PLOT = "families"
MB = 1e6
X_LABEL = "parameter sparsity (share of prunable encoder weights removed)"
FAMILIES_TITLE = ", pruning families at equal parameter count"  # after the sweep's title


@dataclass
class FamiliesReport(RunReport):
    """A sweep report whose levels are (family, parameter sparsity) pairs; ``efficiency``: level name -> record."""

    efficiency: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def x_label(self) -> str:
        return X_LABEL

    def families(self) -> list[str]:
        return list(dict.fromkeys(family_of(stage.name) for stage in self.levels))

    def x(self, stage: StageResult) -> float:
        return remaining(self.dense, stage).achieved_sparsity if stage.kind != "dense" else 0.0

    # ---- the families table ----
    def families_table(self) -> str:
        """Family x parameter sparsity: accuracy, parameters, bytes on disk, latency, robustness and leakage."""
        recipes = self.recipes()
        batches = self._batch_sizes()
        header = ["family", "target p", "remaining prunable weights", "total params (nonzero)", self.quality_metric,
                  "safetensors MB", "compressed MB (values+bitmask)"]
        for b in batches:
            header += [f"ms b{b} dense kernel (speedup)", f"ms b{b} CSR kernel (speedup)"]
        header += [f"ASR {r}" for r in recipes] + ["loyalty", "MIA AUC (strongest)"]
        rows = [self._dense_family_row(recipes, batches)]
        rows += [self._family_row(stage, recipes, batches) for stage in self._ordered_levels()]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])

    def _ordered_levels(self) -> list[StageResult]:
        order = {name: i for i, name in enumerate(self.families())}
        return sorted(self.levels, key=lambda s: (float(s.level or 0.0), order[family_of(s.name)]))

    def _batch_sizes(self) -> list[str]:
        sizes = {b for record in self.efficiency.values() for b in record["latency"]["batches"]}
        return sorted(sizes, key=int)

    def _dense_family_row(self, recipes: list[str], batches: list[str]) -> list[str]:
        d = self.dense
        records = list(self.efficiency.values())
        size = f"{records[0]['dense_safetensors_bytes'] / MB:.1f}" if records else ""
        row = ["**dense (reference)**", "0", "100.0%", f"{int(d.sparsity['params']):,}",
               f"{d.quality['value']:.4f}", size, ""]
        for b in batches:
            values = [r["latency"]["batches"][b]["dense_ms"] for r in records if b in r["latency"]["batches"]]
            row += [f"{statistics.median(values):.1f} (1.00x)" if values else "", ""]
        audit = d.model_audit
        asr = {r.recipe: r.attack_success_rate.format() for r in audit.robustness}
        mia = audit.strongest_mia()
        row += [asr.get(r, "") for r in recipes]
        row += ["1 (reference)", "" if mia is None else f"{self._mia_cell(audit, mia[0])} ({mia[0]})"]
        return row

    def _family_row(self, stage: StageResult, recipes: list[str], batches: list[str]) -> list[str]:
        r, eff = remaining(self.dense, stage), self.efficiency.get(stage.name)
        quality = f"{stage.quality['value']:.4f} ({stage.quality['value'] - self.dense.quality['value']:+.4f})"
        params = f"{int(stage.sparsity['params']):,} ({int(stage.sparsity['nonzero_params']):,})"
        row = [family_of(stage.name), f"{float(stage.level):.2f}", f"{100 * r.fraction:.1f}%", params, quality]
        if eff is None:
            row += ["", ""] + ["", ""] * len(batches)
        else:
            row += [f"{eff['safetensors_bytes'] / MB:.1f}", f"{eff['compressed_bytes'] / MB:.1f}"]
            for b in batches:
                entry = eff["latency"]["batches"].get(b, {})
                row.append(f"{entry['pruned_ms']:.1f} ({entry['speedup_dense_kernel']:.2f}x)" if entry else "")
                row.append(f"{entry['sparse_ms']:.1f} ({entry['speedup_sparse_kernel']:.2f}x)"
                           if "sparse_ms" in entry else "n/a (no zeroed weights)")
        audit = stage.model_audit
        asr = {x.recipe: x.attack_success_rate.format() for x in audit.robustness}
        mia = audit.strongest_mia()
        row += [asr.get(name, "") for name in recipes]
        row.append("" if audit.loyalty is None else f"{audit.loyalty.label_loyalty.value:.3f}")
        row.append("" if mia is None else f"{self._mia_cell(audit, mia[0])} ({mia[0]})")
        return row

    def equal_check_lines(self) -> str:
        """One line per target p: each family's achieved remaining share and whether they agree."""
        lines = []
        for target, entry in sorted(equal_parameter_check(self.dense, self.levels).items()):
            shares = ", ".join(f"{name} {100 * v:.2f}%" for name, v in entry["remaining"].items())
            verdict = "equal within" if entry["equal"] else "NOT equal within"
            lines.append(f"- p = {target}: remaining prunable weights {shares}; spread {100 * entry['spread']:.2f} "
                         f"percentage points ({verdict} {100 * entry['tolerance']:.0f})")
        return "\n".join(lines)

    # ---- markdown / JSON ----
    def to_markdown(self) -> str:
        return with_families_section(super().to_markdown(), [
            self._definition(), "", self.families_table(), "", self._efficiency_notes(), "",
            "Achieved remaining parameters (from each level's SparsityReport):", "", self.equal_check_lines()])

    def _definition(self) -> str:
        pruning = self.recipe.pruning
        return ("Parameter sparsity p = share of the prunable encoder-layer weights (attention query/key/value/output "
                "and FFN in/out matrices; biases, embeddings, norms and the classifier not counted) removed. "
                "structured: heads and FFN neurons, each at p; weight: unstructured "
                f"{pruning.weight_method} weight pruning at p; combined: heads and FFN neurons at s and weights at w "
                "with (1-s)(1-w) = 1-p, s = w = 1-sqrt(1-p). All levels use the same schedule, distillation and "
                "training examples.")

    def _efficiency_notes(self) -> str:
        records = list(self.efficiency.values())
        if not records:
            return ""
        lat = records[0]["latency"]
        rounds = ", ".join(f"batch {b}: {e['rounds']} rounds" for b, e in lat["batches"].items())
        diffs = [e["sparse_max_abs_diff"] for r in records for e in r["latency"]["batches"].values()
                 if "sparse_max_abs_diff" in e]
        diff = f" CSR-kernel logits differ from dense-kernel logits by at most {max(diffs):.1e}." if diffs else ""
        return (f"Latency: median CPU forward (ms) at sequence length {lat['seq_len']}, {lat['threads']} torch "
                f"thread(s), the dense model, the pruned model with dense kernels and (weight, combined) the pruned "
                f"model with torch.sparse CSR matrices timed interleaved in one process ({rounds}); speedup = median "
                f"per-round ratio against the dense model. Zeroed weights do not speed up dense kernels; "
                f"safetensors MB is the saved model folder (structured levels are physically smaller), compressed MB "
                f"a save_compressed copy (nonzero values + 1-bit mask per weight).{diff}")

    def to_dict(self) -> dict[str, Any]:
        payload = super().to_dict()
        payload["kind"] = "hfprune_families_report"
        payload["efficiency"] = self.efficiency
        payload["equal_parameters"] = equal_parameter_check(self.dense, self.levels)
        return payload

    # ---- plots ----
    def family_series(self, metric: Callable[[StageResult], Any], suffix: str = "") -> list[Series]:
        """One series per family of ``metric`` (a number or a metric with value/low/high) against achieved p, each
        starting from the dense model at p = 0 (every family prunes the same dense model)."""
        series = []
        for name in self.families():
            points = []
            for stage in [self.dense, *(s for s in self.levels if family_of(s.name) == name)]:
                value = metric(stage)
                if value is None:
                    continue
                if isinstance(value, (int, float)):
                    points.append(Point(self.x(stage), float(value)))
                elif not math.isnan(value.value):
                    points.append(Point(self.x(stage), value.value, value.low, value.high))
            series.append(Series(name + suffix, points if len(points) > 1 else []))
        return series

    def plot_specs(self) -> dict[str, tuple[str, Callable[[], list[Series]]]]:
        specs: dict[str, tuple[str, Callable[[], list[Series]]]] = {
            f"{self.quality_metric}_vs_param_sparsity": (self.quality_metric, lambda: self.family_series(
                lambda s: float(s.quality["value"]))),
            "mia_auc_vs_param_sparsity": ("membership inference AUC (strongest attack)",
                                          lambda: self.family_series(self._strongest_auc)),
        }
        for recipe in self.recipes():
            specs[f"attack_success_{recipe}_vs_param_sparsity"] = (
                f"attack success rate ({recipe})", lambda recipe=recipe: self.family_series(
                    lambda s: next((r.attack_success_rate for r in s.model_audit.robustness if r.recipe == recipe),
                                   None)))
        for b in self._batch_sizes():
            specs[f"latency_b{b}_vs_param_sparsity"] = (f"forward ms (seq 128, batch {b})",
                                                        lambda b=b: self._latency_series(b))
        return specs

    @staticmethod
    def _strongest_auc(stage: StageResult) -> Any:
        audit = stage.model_audit
        best = audit.strongest_mia()
        return None if best is None else next(r.auc for r in audit.privacy.membership if r.attack == best[0])

    def _latency_series(self, batch: str) -> list[Series]:
        def kernel(key: str) -> Callable[[StageResult], Any]:
            def metric(stage: StageResult) -> Any:
                if stage.kind == "dense":
                    values = [r["latency"]["batches"][batch]["dense_ms"] for r in self.efficiency.values()]
                    return statistics.median(values) if values else None
                entry = self.efficiency.get(stage.name, {}).get("latency", {}).get("batches", {}).get(batch, {})
                return entry.get(key)
            return metric

        return self.family_series(kernel("pruned_ms"), " (dense kernel)") + [
            s for s in self.family_series(kernel("sparse_ms"), " (CSR kernel)") if s.points]

    def save_plots(self, directory: Path) -> dict[str, Path]:
        return save_panel(super().save_plots(directory), directory)


def with_families_section(markdown: str, body: list[str]) -> str:
    """A report's markdown with the families section (``body`` lines, then the panel) before its Results."""
    head, _, tail = markdown.partition("## Results")
    section = ["## Families at equal parameter count", "", *body, "", f"![families]({PLOTS_DIR}/{FAMILIES_PLOT}.png)",
               "", ""]
    return head + "\n".join(section) + "## Results" + tail


def save_panel(written: dict[str, Path], directory: Path) -> dict[str, Path]:
    """Add one PNG (``plots/families.png``) with every plot ``written`` (role ``plot:<name>`` -> PNG) as a panel."""
    import io

    from PIL import Image

    images = [Image.open(path) for role, path in written.items() if role.startswith("plot:")]
    columns = 2
    rows = max(1, math.ceil(len(images) / columns))
    width, height = images[0].size if images else (10, 10)
    canvas = Image.new("RGB", (columns * width, rows * height), "white")
    for i, image in enumerate(images):
        canvas.paste(image, ((i % columns) * width, (i // columns) * height))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    path = directory / PLOTS_DIR / f"{FAMILIES_PLOT}.png"
    atomic_write_bytes(path, buffer.getvalue())
    return {**written, f"plot:{FAMILIES_PLOT}": path}


def save_families_report(runner: Any, dense: StageResult, levels: list[StageResult], report_dir: Path,
                         title: str) -> dict[str, dict[str, Any]]:
    """A one-seed families sweep's efficiency records (measured, or read back) and its report in ``report_dir``;
    returns the records (level name -> record)."""
    from hfprune.pipeline.families import families_efficiency

    measured = families_efficiency(runner, dense, levels)
    FamiliesReport(runner.recipe, dense, levels, title=title + FAMILIES_TITLE, efficiency=measured).save(report_dir)
    return measured
