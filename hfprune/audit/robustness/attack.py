"""Running one TextAttack recipe against one model on the audit's sample.

The attack is TextAttack's own (goal function, constraints, transformation, search method); hfprune supplies the
model wrapper, sets the same query budget and model batch size for every model, seeds TextAttack's random
choices identically before each model, and turns each ``AttackResult`` into an :class:`AttackRecord`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from hfprune.audit.results import RobustnessResult
from hfprune.audit.robustness.base import AuditTarget, Probe
from hfprune.audit.robustness.config import AuditConfig
from hfprune.audit.robustness.log import AttackLog, record_from_result
from hfprune.audit.robustness.recipes import RecipeLike, ResolvedRecipe, resolve_recipe
from hfprune.audit.robustness.sample import AttackSample, draw_sample
from hfprune.audit.robustness.wrapper import textattack_wrapper
from hfprune.errors import ConfigError
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

logger = get_logger(__name__)


@dataclass
class AttackRun:
    """The summary of one recipe against one model, and the per-example log it was computed from."""

    result: RobustnessResult
    log: AttackLog


class AttackProbe(Probe[AttackRun]):
    """Attack every example of the sample with one recipe, under ``config``'s query budget and seed."""

    kind = "attack"

    def __init__(self, recipe: RecipeLike | ResolvedRecipe, config: AuditConfig | None = None) -> None:
        self.recipe = recipe if isinstance(recipe, ResolvedRecipe) else resolve_recipe(recipe)
        self.config = config or AuditConfig()

    def _validate(self, target: AuditTarget, sample: AttackSample) -> None:
        target.measured_sparsity(self.config.sparsity_measure)  # fail before attacking, not after

    def _run(self, target: AuditTarget, sample: AttackSample) -> AttackRun:
        from hfprune.compat.textattack import import_textattack

        textattack = import_textattack()
        config = self.config
        attack = self._build(target)
        textattack.shared.utils.set_seed(config.seed)  # same random character edits for every model
        log = AttackLog(model_name=target.name, sparsity=target.measured_sparsity(config.sparsity_measure),
                        recipe=self.recipe.name, columns=sample.columns, sample_fingerprint=sample.fingerprint(),
                        seed=config.seed, query_budget=config.query_budget)
        started = time.perf_counter()
        progress = tqdm(range(len(sample)), desc=f"{self.recipe.name} vs {target.name}", unit="example",
                        disable=not config.progress)
        for position in progress:
            result = attack.attack(sample.textattack_input(position), sample.labels[position])
            log.records.append(record_from_result(result, sample.indices[position], sample.labels[position]))
            progress.set_postfix(outcome=log.records[-1].outcome, refresh=False)
        log.seconds = time.perf_counter() - started
        summary = log.summarize(config.n_resamples, config.confidence)
        logger.info("%s vs %s: %d examples in %.1f s, success rate %s, accuracy under attack %s", self.recipe.name,
                    target.name, len(sample), log.seconds, summary.attack_success_rate.format(),
                    summary.accuracy_under_attack.format())
        return AttackRun(summary, log)

    def _build(self, target: AuditTarget) -> Any:
        """The recipe's Attack against ``target``, with the audit's query budget and model batch size."""
        predictor = target.predictor(self.config.batch_size, self.config.max_length)
        attack = self.recipe.build(textattack_wrapper(predictor))
        goal = attack.goal_function
        if getattr(goal, "maximizable", False):
            raise ConfigError(f"recipe {self.recipe.name!r}: its goal function {type(goal).__name__} maximises a "
                              "score; the audit needs an untargeted classification goal (success = label flipped)")
        goal.query_budget = float("inf") if self.config.query_budget is None else self.config.query_budget
        goal.batch_size = self.config.batch_size
        attack.clear_cache()  # a retargeted Attack object must not answer from the previous model's outputs
        return attack


def run_attack(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Any,
    recipe: RecipeLike,
    n_examples: int = 200,
    query_budget: int | None = 1000,
    seed: int = 0,
    *,
    name: str = "model",
    sparsity: float | None = None,
    config: AuditConfig | None = None,
) -> AttackRun:
    """Attack ``n_examples`` seeded examples of ``dataset`` with ``recipe`` and summarise the outcome.

    ``dataset`` is a ``datasets.Dataset`` or a sequence of ``(text, label)`` pairs; the same seed draws the same
    examples for every model. ``config`` supplies the other settings (batch size, bootstrap, ...); the explicit
    arguments override its fields.
    """
    base = (config or AuditConfig()).to_dict()
    settings = AuditConfig.from_dict({**base, "n_examples": n_examples, "query_budget": query_budget, "seed": seed})
    sample = draw_sample(dataset, settings.n_examples, settings.seed, settings.text_columns, settings.label_column)
    target = AuditTarget(name, model, tokenizer, sparsity)
    return AttackProbe(recipe, settings)(target, sample)
