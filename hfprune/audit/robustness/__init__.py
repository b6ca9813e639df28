"""What pruning did to adversarial robustness: TextAttack attacks on the dense and the pruned models, on one seeded
sample with one query budget; loyalty to the dense model; transfer of adversarial examples between them; reports.

    from hfprune.audit.robustness import AuditConfig, AuditTarget, RobustnessAudit

    audit = RobustnessAudit(AuditConfig(recipes=["deepwordbug", "pwws"], n_examples=200, output_dir="audit"))
    report = audit.run([AuditTarget("dense", dense, tok, 0.0), AuditTarget("pruned-50", pruned, tok)])

Layout (TextAttack-style composition): ``wrapper`` (batched model queries), ``sample`` (the seeded sample),
``recipes`` (names -> TextAttack recipes, with resource checks), ``base`` (targets and the probe base), ``attack``,
``loyalty`` and ``transfer`` (the probes), ``log`` (per-example records), ``runner`` (the audit) and ``report``
(the report and its JSON, markdown, CSV, plots). Importing this package does not import textattack; running an
attack does.
"""

from hfprune.audit.robustness.attack import AttackProbe, AttackRun, run_attack
from hfprune.audit.robustness.base import AuditTarget, Probe
from hfprune.audit.robustness.config import SPARSITY_MEASURES, AuditConfig
from hfprune.audit.robustness.log import AttackLog, AttackRecord
from hfprune.audit.robustness.loyalty import LoyaltyProbe
from hfprune.audit.robustness.recipes import (
    RECIPES,
    MissingResourceError,
    RecipeSpec,
    available_recipes,
    get_recipe,
    register_recipe,
    resolve_recipe,
)
from hfprune.audit.robustness.report import PLOTS, RobustnessReport, save_report
from hfprune.audit.robustness.runner import RobustnessAudit
from hfprune.audit.robustness.sample import AttackSample, draw_sample
from hfprune.audit.robustness.transfer import (
    TransferProbe,
    TransferResult,
    TransferRun,
    robustness_result_from_dict,
    transfer_rate,
)
from hfprune.audit.robustness.wrapper import ClassifierPredictor, textattack_wrapper

__all__ = [
    "PLOTS", "RECIPES", "SPARSITY_MEASURES", "AttackLog", "AttackProbe", "AttackRecord", "AttackRun", "AttackSample",
    "AuditConfig", "AuditTarget", "ClassifierPredictor", "LoyaltyProbe", "MissingResourceError", "Probe",
    "RecipeSpec", "RobustnessAudit", "RobustnessReport", "TransferProbe", "TransferResult", "TransferRun",
    "available_recipes", "draw_sample", "get_recipe", "register_recipe", "resolve_recipe",
    "robustness_result_from_dict", "run_attack", "save_report", "textattack_wrapper", "transfer_rate",
]
