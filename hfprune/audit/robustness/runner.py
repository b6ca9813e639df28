"""``RobustnessAudit``: attack the dense model and every pruned model on one seeded sample with one query budget,
measure their loyalty to the dense model, replay adversarial examples between them, and collect a report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hfprune.audit.robustness.attack import AttackProbe
from hfprune.audit.robustness.base import AuditTarget
from hfprune.audit.robustness.config import AuditConfig
from hfprune.audit.robustness.loyalty import LoyaltyProbe
from hfprune.audit.robustness.recipes import RecipeLike, ResolvedRecipe, resolve_recipe
from hfprune.audit.robustness.report import RobustnessReport
from hfprune.audit.robustness.sample import AttackSample, draw_sample
from hfprune.audit.robustness.transfer import TransferProbe, TransferRun
from hfprune.errors import ConfigError
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)


class RobustnessAudit:
    """The robustness audit of a dense model (the reference) and its pruned versions.

    ``recipes`` overrides ``config.recipes`` and may hold ``textattack.Attack`` objects or builder callables;
    names are resolved, and their resources checked, here, before any model is attacked.
    """

    def __init__(self, config: AuditConfig | None = None, recipes: Sequence[RecipeLike] | None = None) -> None:
        self.config = config or AuditConfig()
        if recipes is not None and (isinstance(recipes, str) or not recipes):
            raise ConfigError(f"recipes: expected a non-empty list of recipes, got {recipes!r}")
        self.recipes: list[ResolvedRecipe] = [resolve_recipe(r) for r in (recipes or self.config.recipes)]

    def load_dataset(self) -> Any:
        from hfprune.data import load_dataset

        return load_dataset(self.config.dataset, split=self.config.split)

    def samples(self, dataset: Any) -> tuple[AttackSample, AttackSample]:
        """The attack sample and the loyalty sample, both drawn with ``config.seed``."""
        c = self.config
        attack = draw_sample(dataset, c.n_examples, c.seed, c.text_columns, c.label_column)
        loyalty = draw_sample(dataset, c.n_loyalty_examples, c.seed, c.text_columns, c.label_column)
        return attack, loyalty

    def run(
        self, targets: Sequence[AuditTarget], dataset: Any = None, reference: str | None = None
    ) -> RobustnessReport:
        """Audit ``targets`` (the reference first unless ``reference`` names it) on ``dataset`` (default: the
        config's dataset and split). Saves the report when ``config.output_dir`` is set."""
        started = time.perf_counter()
        ref = self._reference(targets, reference)
        attack_sample, loyalty_sample = self.samples(self.load_dataset() if dataset is None else dataset)
        report = RobustnessReport(
            config=self.config, reference=ref.name, recipes=[r.name for r in self.recipes], sample=attack_sample,
            loyalty_sample=loyalty_sample,
            models={t.name: t.measured_sparsity(self.config.sparsity_measure) for t in targets},
        )
        loyalty = LoyaltyProbe(ref, self.config)
        report.loyalty = [loyalty(target, loyalty_sample) for target in targets]
        for recipe in self.recipes:
            probe = AttackProbe(recipe, self.config)
            for target in targets:
                run = probe(target, attack_sample)
                report.robustness.append(run.result)
                report.attack_logs.append(run.log)
        if self.config.transfer:
            report.transfer_runs = self._transfers(report, targets, ref)
        report.seconds = time.perf_counter() - started
        if self.config.output_dir:
            report.save(self.config.output_dir)
        return report

    def attack(self, target: AuditTarget, dataset: Any, reference: AuditTarget | None = None) -> RobustnessReport:
        """Audit one model on its own (each model of a run is audited apart, so a finished stage never needs
        recomputing): every recipe on the seeded sample, plus its loyalty to ``reference`` when given. The model's
        sparsity is ``target.sparsity`` (0 when unset); no transfer (that needs two models)."""
        started = time.perf_counter()
        attack_sample, loyalty_sample = self.samples(dataset)
        report = RobustnessReport(
            config=self.config, reference=target.name, models={target.name: target.sparsity or 0.0},
            recipes=[r.name for r in self.recipes], sample=attack_sample, loyalty_sample=loyalty_sample,
        )
        for recipe in self.recipes:
            logger.info("attacking %s with %s on %d examples (query budget %s)", target.name, recipe.name,
                        len(attack_sample), self.config.query_budget)
            run = AttackProbe(recipe, self.config)(target, attack_sample)
            report.robustness.append(run.result)
            report.attack_logs.append(run.log)
        if reference is not None:
            report.loyalty = [LoyaltyProbe(reference, self.config)(target, loyalty_sample)]
        report.seconds = time.perf_counter() - started
        return report

    def _transfers(
        self, report: RobustnessReport, targets: Sequence[AuditTarget], ref: AuditTarget
    ) -> list[TransferRun]:
        """Reference -> each other model, and each other model -> reference, for every recipe."""
        runs = []
        for recipe in report.recipes:
            for target in (t for t in targets if t is not ref):
                runs.append(TransferProbe(report.log(ref.name, recipe), self.config)(target, report.sample))
                runs.append(TransferProbe(report.log(target.name, recipe), self.config)(ref, report.sample))
        return runs

    @staticmethod
    def _reference(targets: Sequence[AuditTarget], reference: str | None) -> AuditTarget:
        if not targets or not all(isinstance(t, AuditTarget) for t in targets):
            raise ConfigError("targets: expected a non-empty list of AuditTarget (the dense reference and the "
                              "pruned models)")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"targets: expected distinct model names, got {names}")
        if reference is None:
            return targets[0]
        if reference not in names:
            raise ConfigError(f"reference: expected one of the target names {names}, got {reference!r}")
        return targets[names.index(reference)]
