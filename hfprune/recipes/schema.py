"""The recipe schema: one YAML file = model + data + training + pruning + distillation + audits + output.

A recipe is a tree of dataclasses. Loading is strict and complete before anything runs: an unknown key, a value of
the wrong type or out of range is a :class:`~hfprune.errors.ConfigError` naming the dotted key
(``pruning.head_sparsity``) and what is allowed; a missing, unreadable, non-UTF-8 or malformed file names the file;
paths the recipe points at (model directory, data folder) are checked too. Nothing is written by loading.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Self

from hfprune.errors import ConfigError, DataError
from hfprune.models import DEFAULT_MODEL
from hfprune.pruning.config import PruningConfig
from hfprune.recipes.families_spec import check_families
from hfprune.training_args import (
    check_training_knobs,
    device_field,
    precision_field,
    training_field,
    weight_decay_field,
)
from hfprune.utils.config import (
    ConfigMixin,
    check_choice,
    check_fraction,
    check_int,
    check_number,
    field_help,
    fingerprint,
)

TASKS = ("sequence-classification", "causal-lm")
# membership attacks a recipe can run without shadow models, and those that need some: attack -> shadows needed
RECIPE_MIA_ATTACKS = ("loss", "confidence", "entropy")
SHADOW_MIA_ATTACKS = {"reference": 1, "lira": 2}
# pruning fields a sweep level may set
SWEEP_FIELDS = ("head_sparsity", "ffn_sparsity", "weight_sparsity")


class Section(ConfigMixin):
    """Base of every recipe section: a :class:`~hfprune.utils.config.ConfigMixin` whose ``path`` is its dotted key
    (``audits.robustness``), which its loading and validation errors name."""

    path: ClassVar[str] = ""


@dataclasses.dataclass
class PruningSection(PruningConfig, Section):
    """A recipe's ``pruning`` section: :class:`~hfprune.pruning.config.PruningConfig`, whose errors name
    ``pruning.head_sparsity`` (also in the sweep levels derived from it)."""

    path: ClassVar[str] = "pruning"


def section(factory: Any, help: str) -> Any:
    """A nested section field: a fresh default per recipe, with ``help`` metadata."""
    return dataclasses.field(default_factory=factory, metadata={"help": help})


def _positive(section: Section, *names: str) -> None:
    for name in names:
        check_number(section.path, name, getattr(section, name), minimum=0.0, inclusive=False)


# -------------------------------------------------------------------------------------------------------- sections
@dataclasses.dataclass
class ScratchModel(Section):
    """A small GPT-2 built from ``GPT2Config`` and trained here (offline causal LM: no GPT-2 weights exist offline)."""

    path: ClassVar[str] = "model.scratch"

    n_layer: int = field_help(4, "transformer layers")
    n_embd: int = field_help(256, "hidden size")
    n_head: int = field_help(8, "attention heads (n_embd must be a multiple)")
    vocab_size: int = field_help(2048, "byte-level BPE vocabulary of the tokenizer trained here")

    def __post_init__(self) -> None:
        for name, minimum in (("n_layer", 1), ("n_embd", 8), ("n_head", 1), ("vocab_size", 300)):
            check_int(self.path, name, getattr(self, name), minimum=minimum)
        if self.n_embd % self.n_head:
            raise ConfigError(f"{self.key('n_embd')}: expected a multiple of n_head={self.n_head}, got {self.n_embd}")


@dataclasses.dataclass
class ModelSection(Section):
    """What is pruned: a Hub name or model directory, its task, or a dense teacher already fine-tuned."""

    path: ClassVar[str] = "model"

    name: str | None = field_help(
        DEFAULT_MODEL, "Hub name or model directory (minilm = the embedded all-MiniLM-L6-v2, offline); for "
        "causal-lm, null builds a small GPT-2 from model.scratch and trains it here")
    task: str = field_help("sequence-classification", f"one of {list(TASKS)}")
    teacher: str | None = field_help(
        None, "directory of a dense model already fine-tuned by hfprune (finetune_on_members or train_canary_lm, "
        "so its membership split is recorded); null fine-tunes model.name first")
    scratch: ScratchModel = section(ScratchModel, "architecture of the GPT-2 trained here when name is null")

    def __post_init__(self) -> None:
        check_choice(self.path, "task", self.task, TASKS)
        if self.name is None and self.task != "causal-lm" and self.teacher is None:
            raise ConfigError(f"{self.key('name')}: required for task {self.task!r} (a Hub name or a model "
                              "directory); only causal-lm may build a model from scratch")
        if self.name is not None and not self.name.strip():
            raise ConfigError(f"{self.key('name')}: expected a Hub name or a model directory, got an empty string")

    def check_paths(self) -> None:
        """A name that is a local path must be a saved model directory (config.json present)."""
        for name in ("name", "teacher"):
            value = getattr(self, name)
            if value is None:
                continue
            if name == "teacher" or _looks_local(value):
                _check_model_dir(self.key(name), value)


def _looks_local(value: str) -> bool:
    """A path rather than a Hub id: starts like a path, exists here, or has more parts than ``owner/name``."""
    return value.startswith(("/", "./", "../", "~")) or Path(os.path.expanduser(value)).exists() or (
        value.strip("/").count("/") > 1)


def _check_model_dir(key: str, value: str) -> None:
    folder = Path(os.path.expanduser(value))
    if not folder.is_dir():
        raise ConfigError(f"{key}: {value!r} is not a directory ({folder.absolute()}); expected a saved model "
                          "directory or a Hub name")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{key}: {value!r} is not a saved model directory (no config.json in {folder.absolute()})")
    if not os.access(folder / "config.json", os.R_OK):
        raise ConfigError(f"{key}: cannot read {folder / 'config.json'} (permission denied)")


@dataclasses.dataclass
class DataSection(Section):
    """What the model is trained and evaluated on."""

    path: ClassVar[str] = "data"

    dataset: str = field_help("glue/sst2", "dataset name for hfprune.data.load_dataset (a Hub name or local copy)")
    data_dir: str | None = field_help(
        None, "folder holding hfprune's local dataset copies (overrides HFPRUNE_DATA_DIR); must be readable")
    train_samples: int = field_help(
        1000, "training examples (members, recorded for the privacy audit), drawn from the train split")
    train_split: str = field_help("train", "split the training examples (members and non-members) are drawn from")
    eval_split: str | None = field_help(None, "split to evaluate on (null: validation, else test)")
    eval_samples: int | None = field_help(None, "evaluate on at most this many examples (null: the whole split)")
    max_length: int = field_help(64, "truncate inputs to this many tokens (training, evaluation and audits)")

    def __post_init__(self) -> None:
        if not self.dataset.strip():
            raise ConfigError(f"{self.key('dataset')}: expected a dataset name, got an empty string")
        check_int(self.path, "train_samples", self.train_samples, minimum=2)
        if self.eval_samples is not None:
            check_int(self.path, "eval_samples", self.eval_samples, minimum=1)
        check_int(self.path, "max_length", self.max_length, minimum=8)

    def check_paths(self) -> None:
        """``data_dir``, when given, must be a readable folder."""
        if self.data_dir is None:
            return
        folder = Path(os.path.expanduser(self.data_dir))
        if not folder.is_dir():
            raise DataError(f"{self.key('data_dir')}: {self.data_dir!r} is not a directory ({folder.absolute()}); "
                            "expected the folder holding hfprune's local dataset copies")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise DataError(f"{self.key('data_dir')}: cannot read {folder.absolute()} (permission denied)")


@dataclasses.dataclass
class TrainingSection(Section):
    """Dense fine-tuning, then pruning (with distillation) on the same examples."""

    path: ClassVar[str] = "training"

    dense_epochs: float = field_help(
        3.0, "epochs of dense fine-tuning (skipped when model.teacher is given); 0: the loaded model.name is the "
        "dense model (privacy audits off: they score what the dense fine-tune recorded)")
    prune_epochs: float = field_help(3.0, "epochs of pruning with distillation, starting from the dense model")
    batch_size: int = training_field("batch_size", 32)
    learning_rate: float = training_field("learning_rate", 1e-4, "peak learning rate of both stages")
    prune_learning_rate: float | None = field_help(None, "learning rate of the pruning stage (null: learning_rate)")
    weight_decay: float = weight_decay_field(0.0)
    seed: int = training_field("seed", 0, seeds="the member split, initialisation and shuffling")
    seeds: list[int] | None = field_help(
        None, "run the dense model and every pruned level once per seed (e.g. [0, 1, 2]; hfprune run/sweep --seeds) "
        "and report the mean, spread and pooled paired tests; a seed drives initialisation, pruning and data "
        "order, while the member split, evaluation sample and canaries stay those of split_seed in every seed, so "
        "the audits compare the same examples. Not together with seed; null: one run with seed")
    split_seed: int | None = field_help(
        None, "seed of the member split, evaluation sample and canaries (null: the first of seeds, else seed)")
    threads: int | None = training_field("threads", none="null")
    device: str = device_field()
    precision: str = precision_field()

    def __post_init__(self) -> None:
        check_number(self.path, "dense_epochs", self.dense_epochs, minimum=0.0)
        _positive(self, "prune_epochs", "learning_rate")
        if self.prune_learning_rate is not None:
            _positive(self, "prune_learning_rate")
        check_training_knobs(self.path, self)
        if self.split_seed is not None:
            check_int(self.path, "split_seed", self.split_seed, minimum=0)
        if self.seeds is not None:
            if not self.seeds:
                raise ConfigError(f"{self.key('seeds')}: expected at least one seed (or null for one run with seed)")
            for i, value in enumerate(self.seeds):
                check_int(self.path, f"seeds[{i}]", value, minimum=0)
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"{self.key('seeds')}: expected distinct seeds, got {self.seeds}")
            if len(self.seeds) == 1:  # one seed is a plain run: the same folders, fingerprints and report
                self.seed, self.seeds = self.seeds[0], None

    @classmethod
    def from_dict(cls, payload: Any) -> Self:
        if isinstance(payload, dict) and "seed" in payload and payload.get("seeds") is not None:
            raise ConfigError(f"{cls.path}.seeds: expected either {cls.path}.seed (one run) or {cls.path}.seeds (one "
                              "run per seed), not both; remove one")
        return super().from_dict(payload)

    def to_dict(self) -> dict[str, Any]:
        payload = super().to_dict()
        if self.seeds is not None:  # seed is then unused: left out, the mapping loads back (not both set)
            payload.pop("seed")
        return payload

    @property
    def run_seeds(self) -> list[int]:
        """The seeds the recipe runs: ``seeds``, else just ``seed``."""
        return list(self.seeds) if self.seeds else [self.seed]

    @property
    def member_split_seed(self) -> int:
        """The seed of the member split, evaluation sample and canaries: the same for every seed of a run."""
        return self.split_seed if self.split_seed is not None else self.run_seeds[0]


@dataclasses.dataclass
class DistillationSection(Section):
    """Distillation from the dense model while pruning (hfprune.DistillationTrainer)."""

    path: ClassVar[str] = "distillation"

    enabled: bool = field_help(True, "distil from the dense teacher while pruning")
    alpha: float = field_help(0.5, "weight of the hard-label loss, in [0, 1] (1 - alpha goes to the KD term)")
    temperature: float = field_help(2.0, "softmax temperature of the KD term (> 0)")
    hidden_weight: float = field_help(0.0, "weight of the hidden-state MSE term (>= 0; 0 turns it off)")

    def __post_init__(self) -> None:
        check_fraction(self.path, "alpha", self.alpha, allow_one=True)
        _positive(self, "temperature")
        check_number(self.path, "hidden_weight", self.hidden_weight, minimum=0.0)


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
    per_repetition: int = field_help(10, "canaries drawn for each repetition count (from 5 on, the mean exposure "
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

    def __post_init__(self) -> None:
        check_int(self.path, "latency_rounds", self.latency_rounds, minimum=0)


@dataclasses.dataclass
class SweepSection(Section):
    """Defaults of ``hfprune sweep``: the levels and which pruning fields a level sets."""

    path: ClassVar[str] = "sweep"

    sparsities: list[float] = field_help([0.0, 0.3, 0.5, 0.7, 0.9], "levels, each in [0, 1)")
    apply_to: list[str] = field_help(["head_sparsity", "ffn_sparsity"], f"pruning fields a level sets, from "
                                     f"{list(SWEEP_FIELDS)}")
    families: list[str] = field_help(
        [], "pruning families compared at equal parameter count (structured, weight, combined; see "
        "hfprune.recipes.families_spec); non-empty: hfprune sweep runs these instead of sparsities x apply_to")
    param_sparsities: list[float] = field_help(
        [0.5, 0.9], "families mode: fractions of the prunable encoder-layer weights removed, each in (0, 1)")

    def __post_init__(self) -> None:
        check_sparsities(self.key("sparsities"), self.sparsities)
        if not self.apply_to:
            raise ConfigError(f"{self.key('apply_to')}: expected at least one of {list(SWEEP_FIELDS)}")
        for i, name in enumerate(self.apply_to):
            check_choice(self.path, f"apply_to[{i}]", name, SWEEP_FIELDS)
        check_families(self.key("families"), self.families)
        check_sparsities(self.key("param_sparsities"), self.param_sparsities)
        for i, value in enumerate(self.param_sparsities):
            if value == 0:
                raise ConfigError(f"{self.key('param_sparsities')}[{i}]: expected a number in (0, 1) (the dense "
                                  "model is the reference row), got 0")


def check_sparsities(key: str, values: list[float]) -> None:
    """A non-empty list of distinct levels in [0, 1)."""
    if not values:
        raise ConfigError(f"{key}: expected at least one sparsity level in [0, 1)")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not (
            0 <= value < 1
        ):
            raise ConfigError(f"{key}[{i}]: expected a number in [0, 1), got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}: expected distinct levels, got {values}")


@dataclasses.dataclass
class OutputSection(Section):
    path: ClassVar[str] = "output"

    dir: str | None = field_help(None, "run folder (null: runs/<recipe name>); nothing is written outside it")

    def __post_init__(self) -> None:
        if self.dir is not None and not self.dir.strip():
            raise ConfigError(f"{self.key('dir')}: expected a folder path, got an empty string")


@dataclasses.dataclass
class Recipe(Section):
    """A whole run: model, data, training, pruning, distillation, audits and where the results go."""

    path: ClassVar[str] = ""

    name: str = field_help("recipe", "short name of the run (folder name by default, report title)")
    description: str = field_help("", "one line shown in the report")
    model: ModelSection = section(ModelSection, "the model (required section)")
    data: DataSection = section(DataSection, "dataset and sizes")
    training: TrainingSection = section(TrainingSection, "dense fine-tuning and pruning schedule")
    pruning: PruningSection = section(lambda: PruningSection(head_sparsity=0.5, ffn_sparsity=0.5),
                                      "hfprune.PruningConfig fields")
    distillation: DistillationSection = section(DistillationSection, "distillation while pruning")
    audits: AuditsSection = section(AuditsSection, "robustness, privacy and latency audits")
    sweep: SweepSection = section(SweepSection, "levels of hfprune sweep")
    output: OutputSection = section(OutputSection, "where the run is written")

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError(f"name: expected letters, digits, '.', '_' or '-' (a folder name), got {self.name!r}")
        if self.model.task == "causal-lm" and self.audits.robustness.enabled:
            raise ConfigError("audits.robustness.enabled: the TextAttack audit attacks classifiers; expected false "
                              "for task 'causal-lm'")
        if self.audits.privacy.n_shadows and self.model.teacher is not None:
            raise ConfigError("audits.privacy.n_shadows: shadows are trained the way the dense model was, which a run "
                              "from model.teacher does not know; expected 0 with model.teacher")
        if self.pretrained_is_dense:
            if self.model.name is None:
                raise ConfigError("training.dense_epochs: 0 uses model.name as the dense model, but model.name is "
                                  "null (a GPT-2 built here must be trained); expected dense_epochs > 0")
            if self.audits.privacy.enabled:
                raise ConfigError("audits.privacy.enabled: training.dense_epochs 0 keeps the loaded model as the "
                                  "dense model, which never trained on recorded members or canaries; expected false "
                                  "(or dense_epochs > 0)")

    @property
    def pretrained_is_dense(self) -> bool:
        """Whether the loaded ``model.name`` is the dense model as it is (``training.dense_epochs: 0``, no teacher)."""
        return self.training.dense_epochs == 0 and self.model.teacher is None

    @classmethod
    def from_dict(cls, payload: Any) -> Self:
        if isinstance(payload, dict) and payload.get("model") is None:
            raise ConfigError("model: required section missing; expected a mapping with name (a Hub name or a model "
                              "directory) and task")
        return super().from_dict(payload)

    @classmethod
    def where(cls) -> str:
        return "a recipe"

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir) if self.output.dir else Path("runs") / self.name

    @property
    def is_classifier(self) -> bool:
        return self.model.task == "sequence-classification"

    def check_paths(self) -> None:
        """Check the files and folders the recipe points at (nothing is created)."""
        self.model.check_paths()
        self.data.check_paths()
        out = self.output_dir
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output.dir: {out} exists and is not a directory")

    def fingerprint(self) -> str:
        """SHA-256 of everything that determines the results (not the output folder or the sweep levels)."""
        return fingerprint(self.result_dict())

    def result_dict(self) -> dict[str, Any]:
        """The recipe without the keys that do not change results (output, sweep, name, description, threads), and
        without training.device / precision / weight_decay at their defaults (auto, fp32, 0.0): runs recorded before
        those keys existed keep their fingerprint and resume; another value changes the numbers, so it is a new run."""
        payload = self.to_dict()
        for key in ("output", "sweep", "name", "description"):
            payload.pop(key)
        payload["training"].pop("threads")
        if payload["data"]["train_split"] == "train":  # a key added later: earlier runs keep their fingerprint
            payload["data"].pop("train_split")
        for key, default in (("device", "auto"), ("precision", "fp32"), ("weight_decay", 0.0)):
            if payload["training"][key] == default:
                payload["training"].pop(key)
        # seeds and split_seed are recorded only where they change a stage: the list of seeds run does not (each
        # seed's stages record their own seed), and a split seed equal to the seed is the default
        training = payload["training"]
        if training["seeds"] is None:
            training.pop("seeds")
        if training["split_seed"] is None or training["split_seed"] == training.get("seed"):
            training.pop("split_seed")
        payload["pruning"] = self.pruning.result_dict()
        privacy = payload["audits"]["privacy"]
        if not privacy["n_shadows"]:  # no shadow trained: the mode changes nothing, and older runs keep resuming
            del privacy["n_shadows"], privacy["shadows"]
        return payload


# ---------------------------------------------------------------------------------------------------------- loading
class _Loader:
    """``yaml.SafeLoader`` that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""

    @staticmethod
    def build() -> type:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
            list("-+0123456789"),
        )
        return Loader


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a recipe file into a mapping; every failure names the file and what was expected."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe file {path}: no such file")
    if path.is_dir():
        raise ConfigError(f"recipe file {path}: is a directory; expected a YAML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"recipe file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe file {path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8") from None
    try:
        payload = yaml.load(text, Loader=_Loader.build())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())  # PyYAML's messages span lines
        raise ConfigError(f"recipe file {path}: not valid YAML{at} ({detail})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"recipe file {path}: expected a mapping of sections (model, data, pruning, ...), got "
                          f"{type(payload).__name__}")
    return payload


def load_recipe(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, validate and path-check a recipe; ``overrides`` maps dotted keys to values (``output.dir``).

    Errors are prefixed with the file name. Nothing is written.
    """
    payload = read_recipe_file(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(payload, dotted, value)
    try:
        recipe = Recipe.from_dict(payload)
        recipe.check_paths()
    except (ConfigError, DataError) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return recipe


# an override value that deletes the key from the file's payload: a flag that replaces it (--seeds for seed)
REMOVED = object()


def _set_dotted(payload: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = payload
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{part}: expected a mapping, got {type(child).__name__}")
        node = child
    if value is REMOVED:
        node.pop(last, None)
    else:
        node[last] = value
