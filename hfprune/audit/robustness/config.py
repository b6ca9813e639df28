"""``AuditConfig``: which attacks, on how many examples, with which query budget and seed.

Every model of one audit is attacked on the same seeded sample with the same budget, so that differences between
models are differences between the models, not between samples or budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hfprune.audit.sparsity import SPARSITY_MEASURES
from hfprune.errors import ConfigError
from hfprune.utils.config import ConfigMixin, check_choice, check_int, field_help

if TYPE_CHECKING:
    pass

DEFAULT_RECIPES = ["deepwordbug", "pwws"]


@dataclass
class AuditConfig(ConfigMixin):
    """Settings of a robustness audit (``RobustnessAudit``); saved next to the report as ``robustness_audit.json``."""

    config_file_name = "robustness_audit.json"

    recipes: list[str] = field_help(
        DEFAULT_RECIPES, "attack recipes: short names (deepwordbug, pruthi, pwws, textfooler, bae, checklist) or "
        "TextAttack recipe class names (e.g. TextBuggerLi2018)")
    dataset: str = field_help("glue/sst2", "dataset for hfprune.data.load_dataset")
    split: str = field_help("validation", "split the attack sample and the loyalty set are drawn from")
    text_columns: list[str] | None = field_help(None, "text column(s) (None: inferred, e.g. 'sentence')")
    label_column: str = field_help("label", "label column")
    n_examples: int = field_help(200, "examples attacked per model and recipe (one seeded sample for all models)")
    query_budget: int | None = field_help(
        1000, "model queries allowed per attacked example, the same for every model (None: unlimited)")
    seed: int = field_help(0, "seed of the sample, of the attacks' random choices and of the bootstrap")
    n_loyalty_examples: int | None = field_help(
        None, "clean examples for loyalty to the reference model (None: the whole split)")
    batch_size: int = field_help(32, "texts per model forward pass (TextAttack's model_batch_size too)")
    max_length: int = field_help(128, "truncate model inputs to this many tokens")
    transfer: bool = field_help(True, "replay adversarial examples reference -> each model and back")
    sparsity_measure: str = field_help(
        "params", "how a model's sparsity is measured when not given: params (all parameters, embeddings "
        "included), flops (encoder layers), heads, ffn")
    n_resamples: int = field_help(1000, "bootstrap resamples for confidence intervals (0: no intervals)")
    confidence: float = field_help(0.95, "confidence level of the bootstrap intervals")
    progress: bool = field_help(True, "show tqdm progress bars")
    output_dir: str | None = field_help(None, "where RobustnessAudit.run saves the report (None: not saved)")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._check_recipes(owner)
        if self.text_columns is not None and (
            not isinstance(self.text_columns, list) or not 1 <= len(self.text_columns) <= 2
            or not all(isinstance(c, str) and c for c in self.text_columns)
        ):
            raise ConfigError(f"{owner}.text_columns: expected None or a list of one or two column names, "
                              f"got {self.text_columns!r}")
        for name in ("dataset", "split", "label_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{owner}.{name}: expected a non-empty string, got {getattr(self, name)!r}")
        check_int(owner, "n_examples", self.n_examples, minimum=1)
        if self.query_budget is not None:
            check_int(owner, "query_budget", self.query_budget, minimum=1)
        check_int(owner, "seed", self.seed, minimum=0)
        if self.n_loyalty_examples is not None:
            check_int(owner, "n_loyalty_examples", self.n_loyalty_examples, minimum=1)
        check_int(owner, "batch_size", self.batch_size, minimum=1)
        check_int(owner, "max_length", self.max_length, minimum=8)
        check_choice(owner, "sparsity_measure", self.sparsity_measure, tuple(SPARSITY_MEASURES))
        check_int(owner, "n_resamples", self.n_resamples, minimum=0)
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, (int, float)) or not (
            0 < self.confidence < 1
        ) or math.isnan(self.confidence):
            raise ConfigError(f"{owner}.confidence: expected a number in (0, 1), got {self.confidence!r}")
        for name in ("transfer", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{owner}.{name}: expected true or false, got {getattr(self, name)!r}")

    def _check_recipes(self, owner: str) -> None:
        """A non-empty list of distinct names; whether each name exists is checked when the attack is built."""
        if not isinstance(self.recipes, list) or not self.recipes:
            raise ConfigError(f"{owner}.recipes: expected a non-empty list of recipe names, got {self.recipes!r}")
        bad = [r for r in self.recipes if not isinstance(r, str) or not r.strip()]
        if bad:
            raise ConfigError(f"{owner}.recipes: expected recipe names as non-empty strings, got {bad!r}")
        lowered = [r.strip().lower() for r in self.recipes]
        if len(set(lowered)) != len(lowered):
            raise ConfigError(f"{owner}.recipes: expected distinct names, got {self.recipes!r}")
