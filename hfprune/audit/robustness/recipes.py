"""Attack recipes by name: a registry of short names over TextAttack's recipe classes, with a resource check.

Before an attack is built, each resource its recipe needs (NLTK data, embeddings, encoders, taggers) is checked on
disk through :data:`hfprune.compat.textattack.RECIPE_REQUIREMENTS`. A missing one raises
:class:`MissingResourceError` naming it and how to provide it: an attack is never skipped silently, and TextAttack
never gets to start a download that fails minutes later offline.

``resolve_recipe`` also accepts any TextAttack recipe class name (``TextBuggerLi2018``), a builder callable
``model_wrapper -> Attack``, or a built ``textattack.Attack`` (retargeted at each model in turn).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hfprune.compat.textattack import (
    RECIPE_REQUIREMENTS,
    STOPWORDS,
    TEXTATTACK,
    TEXTATTACK_INSTALL_HINT,
    Requirement,
    recipe_status,
    textattack_cache_dir,
    tfhub_cache_dir,
)
from hfprune.errors import ConfigError, HfpruneError
from hfprune.utils.registry import add

# builds an attack against one model wrapper
AttackBuilder = Callable[[Any], Any]


class MissingResourceError(HfpruneError, RuntimeError):
    """A recipe needs a resource (data, weights, package) that is not on this machine."""


def _nltk_hint(package: str) -> str:
    return (f"put NLTK's {package!r} package under a folder on NLTK_DATA: `python -m nltk.downloader -d DIR "
            f"{package}` where the internet is reachable, then copy DIR here and export NLTK_DATA=DIR")


# requirement label (hfprune.compat.textattack) -> how to provide it
RESOURCE_HINTS: dict[str, str] = {
    "textattack": TEXTATTACK_INSTALL_HINT,
    "NLTK stopwords": _nltk_hint("stopwords") + " (or run scripts/build_nltk_data.sh DIR, which needs no internet)",
    "NLTK WordNet": _nltk_hint("wordnet") + " (or run scripts/build_nltk_data.sh DIR: WordNet from Debian packages)",
    "NLTK POS tagger": _nltk_hint("averaged_perceptron_tagger_eng"),
    "NLTK universal tagset": _nltk_hint("universal_tagset"),
    "counter-fitted embeddings": (
        "download https://textattack.s3.amazonaws.com/word_embeddings/paragramcf.zip and unzip it into "
        "{ta_cache}/word_embeddings/ (set TA_CACHE_DIR to choose that folder)"),
    "Universal Sentence Encoder": (
        "pip install tensorflow tensorflow_hub, and put the TF Hub module "
        "https://tfhub.dev/google/universal-sentence-encoder/3 (saved_model.pb and variables/) in "
        "{tfhub_cache}/<sha1 of that URL>/ (set TFHUB_CACHE_DIR to choose the folder)"),
    "bert-base-uncased": (
        "`huggingface-cli download bert-base-uncased` where the Hub is reachable, then copy the HF cache here "
        "(HF_HOME)"),
    "flair NER": (
        "pip install flair and cache its 'flair/ner-english' model (flair >= 0.12 requires transformers < 5, so "
        "this needs a separate environment)"),
}


def resource_hint(requirement: Requirement) -> str:
    """How to provide ``requirement``, with TextAttack's and TF Hub's cache folders filled in."""
    template = RESOURCE_HINTS.get(requirement.label, "see the TextAttack documentation of this recipe")
    return template.format(ta_cache=textattack_cache_dir(), tfhub_cache=tfhub_cache_dir())


def check_requirements(recipe: str, requirements: tuple[Requirement, ...]) -> None:
    """Raise MissingResourceError listing every missing requirement of ``recipe`` and how to provide each."""
    problems = [(req, missing) for req in requirements if (missing := req.missing())]
    if problems:
        details = "; ".join(f"{missing} -> {resource_hint(req)}" for req, missing in problems)
        raise MissingResourceError(f"recipe {recipe!r} cannot run here: missing {details}")


@dataclass(frozen=True)
class RecipeSpec:
    """A TextAttack recipe under a short name; ``build`` checks its resources first."""

    name: str
    class_name: str
    description: str = ""

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        """What the recipe needs; recipes hfprune has not surveyed need at least textattack and its stopwords."""
        return RECIPE_REQUIREMENTS.get(self.class_name, (TEXTATTACK, STOPWORDS))

    def check_resources(self) -> None:
        check_requirements(self.name, self.requirements)

    def build(self, model_wrapper: Any) -> Any:
        """``textattack.attack_recipes.<class_name>.build(model_wrapper)`` once its resources are checked."""
        from hfprune.compat.textattack import local_nltk_downloads

        self.check_resources()
        with local_nltk_downloads():
            return recipe_class(self.class_name).build(model_wrapper)


RECIPES: dict[str, RecipeSpec] = {}


def register_recipe(spec: RecipeSpec) -> RecipeSpec:
    """Add ``spec`` under its (lower-case) short name; a name registered twice is an error."""
    return add(RECIPES, spec.name.lower(), spec, "recipe name")


for _spec in (
    RecipeSpec("deepwordbug", "DeepWordBugGao2018", "character edits of the most important words (Gao et al. 2018)"),
    RecipeSpec("pruthi", "Pruthi2019", "keyboard typos, one character per word (Pruthi et al. 2019)"),
    RecipeSpec("pwws", "PWWSRen2019", "WordNet synonyms by weighted saliency (Ren et al. 2019)"),
    RecipeSpec("textfooler", "TextFoolerJin2019", "embedding synonyms under USE similarity (Jin et al. 2019)"),
    RecipeSpec("bae", "BAEGarg2019", "BERT masked-LM replacements (Garg & Ramakrishnan 2019)"),
    RecipeSpec("checklist", "CheckList2020", "contractions, names, locations, numbers (Ribeiro et al. 2020)"),
):
    register_recipe(_spec)

_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def recipe_class(class_name: str) -> type:
    """The ``textattack.attack_recipes`` class called ``class_name`` (imports textattack)."""
    from hfprune.compat.textattack import import_textattack

    recipes = import_textattack().attack_recipes
    cls = getattr(recipes, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, recipes.AttackRecipe) or cls is recipes.AttackRecipe:
        raise ConfigError(f"recipe: {class_name!r} is not a TextAttack recipe; known short names: "
                          f"{sorted(RECIPES)}, or a class of textattack.attack_recipes")
    return cls


def get_recipe(name: str) -> RecipeSpec:
    """The recipe called ``name``: a short name (any case), or a TextAttack recipe class name."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"recipe: expected a recipe name, got {name!r}")
    key = name.strip()
    if key.lower() in RECIPES:
        return RECIPES[key.lower()]
    by_class = {spec.class_name: spec for spec in RECIPES.values()}
    if key in by_class:
        return by_class[key]
    if not _CLASS_NAME.match(key):
        raise ConfigError(f"recipe: unknown name {name!r}; expected one of {sorted(RECIPES)} or a TextAttack "
                          "recipe class name such as TextBuggerLi2018")
    spec = RecipeSpec(key, key)
    check_requirements(key, (TEXTATTACK,))  # naming a class needs textattack itself before anything else
    recipe_class(key)
    return spec


def available_recipes() -> dict[str, tuple[bool, str | None]]:
    """Short name -> (runnable here, what is missing), from the resources on disk; no import, no network."""
    status = recipe_status()
    return {name: status.get(spec.class_name, (False, "not surveyed")) for name, spec in sorted(RECIPES.items())}


# ---------------------------------------------------------------------------------------------- recipe-likes
RecipeLike = str | RecipeSpec | AttackBuilder | Any  # Any: a built textattack.Attack


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe ready to attack any model: its display name and a builder ``model_wrapper -> Attack``."""

    name: str
    build: AttackBuilder


def resolve_recipe(recipe: RecipeLike) -> ResolvedRecipe:
    """Turn a name, a RecipeSpec, a builder callable or a built ``textattack.Attack`` into a ResolvedRecipe.

    Names are resolved and their resources checked now, so a missing resource fails before any model is
    attacked rather than after the first one.
    """
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    if isinstance(recipe, RecipeSpec):
        recipe.check_resources()
        return ResolvedRecipe(recipe.name, recipe.build)
    if _is_attack(recipe):
        return ResolvedRecipe(_attack_name(recipe), lambda wrapper: retarget_attack(recipe, wrapper))
    if callable(recipe):
        return ResolvedRecipe(getattr(recipe, "__name__", type(recipe).__name__), recipe)
    raise ConfigError(f"recipe: expected a recipe name, a RecipeSpec, a textattack.Attack or a callable "
                      f"model_wrapper -> Attack, got {type(recipe).__name__}")


def _is_attack(obj: Any) -> bool:
    """True for a ``textattack.Attack`` (checked without importing textattack when it is not loaded)."""
    import sys

    textattack = sys.modules.get("textattack")
    return textattack is not None and isinstance(obj, textattack.Attack)


def _attack_name(attack: Any) -> str:
    """A readable name for a hand-built Attack: its search method and transformation classes."""
    return f"{type(attack.search_method).__name__}+{type(attack.transformation).__name__}"


def retarget_attack(attack: Any, model_wrapper: Any) -> Any:
    """Point a built black-box ``Attack`` at ``model_wrapper`` and clear its caches (which hold old outputs).

    White-box parts (gradient-based swaps) hold the model they were built with, so they cannot be retargeted.
    """
    if not attack.is_black_box:
        raise ConfigError("recipe: a white-box textattack.Attack holds its victim model in its transformation and "
                          "cannot be moved to another model; pass a builder callable (model_wrapper -> Attack)")
    attack.goal_function.model = model_wrapper
    attack.clear_cache()
    return attack
