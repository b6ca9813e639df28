"""A recipe's ``audits`` section: TextAttack robustness attacks, membership inference with its shadow models, canary
exposure for causal LMs, and latency rounds."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from hfprune.errors import ConfigError
from hfprune.recipes.section import Section, section
from hfprune.utils.config import check_choice, check_int, field_help

# membership attacks a recipe can run without shadow models, and those that need some: attack -> shadows needed
RECIPE_MIA_ATTACKS = ("loss", "confidence", "entropy")
SHADOW_MIA_ATTACKS = {"reference": 1, "lira": 2}


@dataclasses.dataclass
class RobustnessSection(Section):
    """TextAttack attacks on the dense and each pruned classifier: one seeded sample, one query budget."""

    path: ClassVar[str] = "audits.robustness"
    # "recipe" is the YAML run; a TextAttack attack recipe is an attack here
    renamed: ClassVar[dict[str, str]] = {"recipes": "attacks", "n_examples_per_recipe": "n_examples_per_attack"}

    enabled: bool = field_help(True, "run the robustness audit (classifiers only)")
    attacks: list[str] = field_help(["deepwordbug", "pwws"],
                                    "TextAttack attack recipes by name (hfprune.audit.robustness.RECIPES)")
    n_examples: int = field_help(50, "examples attacked per model and attack")
    n_examples_per_attack: dict[str, int] = field_help({}, "attack -> examples, overriding n_examples (e.g. pwws: 20)")
    query_budget: int | None = field_help(300, "model queries per attacked example (null: unlimited)")
    n_loyalty_examples: int | None = field_help(500, "clean examples for loyalty to the dense model (null: split)")
    n_resamples: int = field_help(1000, "bootstrap resamples for the confidence intervals (0: none)")
    seed: int = field_help(0, "seed of the attack sample and of the attacks' random choices")

    def __post_init__(self) -> None:
        from hfprune.audit.robustness.recipes import RECIPES

        if self.enabled and not self.attacks:
            raise ConfigError(f"{self.key('attacks')}: expected at least one attack name (or enabled: false)")
        for i, name in enumerate(self.attacks):
            check_choice(self.path, f"attacks[{i}]", name.lower(), tuple(RECIPES))
        if len({r.lower() for r in self.attacks}) != len(self.attacks):
            raise ConfigError(f"{self.key('attacks')}: expected distinct names, got {self.attacks}")
        check_int(self.path, "n_examples", self.n_examples, minimum=1)
        for name, count in self.n_examples_per_attack.items():
            if name.lower() not in [r.lower() for r in self.attacks]:
                raise ConfigError(f"{self.key('n_examples_per_attack')}.{name}: expected one of the attacks "
                                  f"{self.attacks}")
            check_int(self.key("n_examples_per_attack"), name, count, minimum=1)
        if self.query_budget is not None:
            check_int(self.path, "query_budget", self.query_budget, minimum=1)
        if self.n_loyalty_examples is not None:
            check_int(self.path, "n_loyalty_examples", self.n_loyalty_examples, minimum=1)
        check_int(self.path, "n_resamples", self.n_resamples, minimum=0)
        check_int(self.path, "seed", self.seed, minimum=0)

    def examples_for(self, attack: str) -> int:
        per = {k.lower(): v for k, v in self.n_examples_per_attack.items()}
        return per.get(attack.lower(), self.n_examples)


@dataclasses.dataclass
class CanarySection(Section):
    """Canaries inserted into a causal LM's training data, and their exposure (Carlini et al. 2019)."""

    path: ClassVar[str] = "audits.privacy.canaries"

    repetitions: list[int] = field_help([0, 1, 10, 100], "repetition counts (0: control canaries never inserted); "
                                        "empty: no canaries")
    per_repetition: int = field_help(10, "canaries drawn for each repetition count (from 10 on, the mean exposure "
                                     "gets an interval; with fewer, reports list the values)")
    digits: int = field_help(4, "secret length in digits: |R| = 10 ** digits candidates")

    def __post_init__(self) -> None:
        for i, count in enumerate(self.repetitions):
            check_int(self.path, f"repetitions[{i}]", count, minimum=0)
        check_int(self.path, "per_repetition", self.per_repetition, minimum=1)
        check_int(self.path, "digits", self.digits, minimum=1)


@dataclasses.dataclass
class PrivacySection(Section):
    """Membership inference on the member split recorded when the dense model was trained; canaries for LMs."""

    path: ClassVar[str] = "audits.privacy"

    enabled: bool = field_help(True, "run the privacy audit")
    attacks: list[str] = field_help(list(RECIPE_MIA_ATTACKS), f"membership attacks, from "
                                    f"{[*RECIPE_MIA_ATTACKS, *SHADOW_MIA_ATTACKS]} (reference and lira need shadows)")
    n_nonmembers: int = field_help(1000, "held-out examples of the train split (non-members), never trained on")
    n_resamples: int = field_help(1000, "bootstrap resamples for the confidence intervals (0: none)")
    n_shadows: int = field_help(
        0, "shadow models trained on examples disjoint from the audited ones, for the reference (>= 1: the first "
        "shadow) and lira (>= 2) attacks; each costs one more training per stage (0: none)")
    shadows: str = field_help(
        "target", "how shadows are trained: 'target' (each audited model's own recipe: a pruned level's shadows are "
        "pruned the same way, distilling from their own dense shadow) or 'dense' (dense fine-tuning only, the same "
        "shadows for every level)")
    canaries: CanarySection = section(CanarySection, "causal-lm only: canaries and their exposure")

    def __post_init__(self) -> None:
        from hfprune.audit.privacy.report import SHADOW_MODES

        check_int(self.path, "n_shadows", self.n_shadows, minimum=0)
        check_choice(self.path, "shadows", self.shadows, list(SHADOW_MODES))
        for i, name in enumerate(self.attacks):
            if name not in (*RECIPE_MIA_ATTACKS, *SHADOW_MIA_ATTACKS):
                raise ConfigError(f"{self.key(f'attacks[{i}]')}: expected one of "
                                  f"{[*RECIPE_MIA_ATTACKS, *SHADOW_MIA_ATTACKS]}, got {name!r}")
            if self.n_shadows < SHADOW_MIA_ATTACKS.get(name, 0):
                raise ConfigError(f"{self.key(f'attacks[{i}]')}: attack {name!r} needs {self.key('n_shadows')} >= "
                                  f"{SHADOW_MIA_ATTACKS[name]}, got {self.n_shadows}")
        if self.n_shadows and not set(self.attacks) & set(SHADOW_MIA_ATTACKS):
            raise ConfigError(f"{self.key('n_shadows')}: {self.n_shadows} shadow model(s) serve only the reference "
                              "and lira attacks; add one to audits.privacy.attacks or set n_shadows: 0")
        if self.enabled and not self.attacks:
            raise ConfigError(f"{self.key('attacks')}: expected at least one attack (or enabled: false)")
        check_int(self.path, "n_nonmembers", self.n_nonmembers, minimum=1)
        check_int(self.path, "n_resamples", self.n_resamples, minimum=0)


@dataclasses.dataclass
class AuditsSection(Section):
    path: ClassVar[str] = "audits"

    robustness: RobustnessSection = section(RobustnessSection, "adversarial robustness (TextAttack)")
    privacy: PrivacySection = section(PrivacySection, "membership inference and canary exposure")
    latency_rounds: int = field_help(20, "interleaved dense/pruned forward passes timed at seq 128, batch 1 (0: none)")
    control: bool = field_help(
        False, "also train the control: a copy of the dense model trained exactly as the pruned ones are (epochs, "
        "members, scorer, distillation) with nothing removed, and test every pruned model against it as well as "
        "against the dense model, so the report separates what pruning changed from what the extra training did "
        "(e.g. more epochs on the members raise the membership AUC by themselves). hfprune run trains it in "
        "control/, a sweep as its sparsity-0 level; costs one more pruning stage")

    def __post_init__(self) -> None:
        check_int(self.path, "latency_rounds", self.latency_rounds, minimum=0)
