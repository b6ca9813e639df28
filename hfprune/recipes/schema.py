"""The recipe schema: one YAML file = model + data + training + pruning + distillation + audits + output.

A recipe is a tree of dataclasses. Loading is strict and complete before anything runs: an unknown key, a value of
the wrong type or out of range is a :class:`~hfprune.errors.ConfigError` naming the dotted key
(``pruning.head_sparsity``) and what is allowed; a missing, unreadable, non-UTF-8 or malformed file names the file;
paths the recipe points at (model directory, data folder) are checked too. Nothing is written by loading.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, ClassVar, Self

from hfprune.errors import ConfigError, DataError
from hfprune.models import DEFAULT_MODEL
from hfprune.pruning.config import PruningConfig
from hfprune.recipes.families_spec import check_families
from hfprune.training import check_placement, device_field, precision_field, weight_decay_field
from hfprune.utils.config import (
    check_choice,
    check_fraction,
    check_int,
    check_number,
    field_help,
    fingerprint,
    matches_type,
    type_name,
)

TASKS = ("sequence-classification", "causal-lm")
# membership attacks a recipe can run: the ones that need no reference or shadow models
RECIPE_MIA_ATTACKS = ("loss", "confidence", "entropy")
# pruning fields a sweep level may set
SWEEP_FIELDS = ("head_sparsity", "ffn_sparsity", "weight_sparsity")


class Section:
    """Base of every recipe section: ``path`` is the section's dotted key (``audits.robustness``)."""

    path: ClassVar[str] = ""
    # old key -> its new name: a recipe still using the old key gets a one-line error saying the new one
    renamed: ClassVar[dict[str, str]] = {}

    def key(self, name: str) -> str:
        """The dotted key of field ``name`` in this section (what error messages name)."""
        return f"{self.path}.{name}" if self.path else name

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, payload: Any) -> Self:
        """Build the section from parsed YAML: unknown keys, wrong types and bad values are errors naming the key."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise ConfigError(f"{cls.path or 'recipe'}: expected a mapping of keys to values, got "
                              f"{type(payload).__name__} {payload!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for old in payload:
            if old in cls.renamed:
                raise ConfigError(f"{cls.path}.{old}: renamed to {cls.path}.{cls.renamed[old]}; expected "
                                  f"'{cls.renamed[old]}:' in {cls.path}")
        _reject_unknown(cls.path, payload, list(fields))
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in payload.items():
            dotted = f"{cls.path}.{name}" if cls.path else name
            hint = hints[name]
            if isinstance(hint, type) and issubclass(hint, Section):
                values[name] = hint.from_dict(value)
            elif hint is PruningConfig:
                values[name] = _pruning_from_dict(value)
            elif not matches_type(value, hint):
                raise ConfigError(f"{dotted}: expected {type_name(hint)}, got {type(value).__name__} {value!r}")
            else:
                values[name] = _coerce(value, hint)
        return cls(**values)


def _coerce(value: Any, hint: Any) -> Any:
    """An integer given for a float field becomes a float (``2`` and ``2.0`` are the same recipe)."""
    floats = hint is float or float in typing.get_args(hint)
    return float(value) if floats and isinstance(value, int) and not isinstance(value, bool) else value


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, PruningConfig):
        return value.to_dict()
    return value


def _reject_unknown(path: str, payload: dict[str, Any], allowed: list[str]) -> None:
    for key in payload:
        if key not in allowed:
            shown = str(key) if re.fullmatch(r"[\w-]+", str(key)) else repr(key)  # a key with ':' or a newline
            dotted = f"{path}.{shown}" if path else shown
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{dotted}: unknown key{hint}; allowed keys in {path or 'a recipe'}: {sorted(allowed)}")


def _pruning_from_dict(payload: Any) -> PruningConfig:
    """``PruningConfig.from_dict`` with its errors re-keyed from ``PruningConfig.x`` to ``pruning.x``."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ConfigError(f"pruning: expected a mapping of keys to values, got {type(payload).__name__} {payload!r}")
    fields = [f.name for f in dataclasses.fields(PruningConfig)]
    _reject_unknown("pruning", payload, fields)
    hints = typing.get_type_hints(PruningConfig)
    for name, value in payload.items():
        if not matches_type(value, hints[name]):
            raise ConfigError(f"pruning.{name}: expected {type_name(hints[name])}, got {type(value).__name__} "
                              f"{value!r}")
    try:
        return PruningConfig(**{name: _coerce(value, hints[name]) for name, value in payload.items()})
    except ConfigError as exc:
        raise ConfigError(re.sub(r"^PruningConfig\.", "pruning.", str(exc))) from None


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

    dense_epochs: float = field_help(3.0, "epochs of dense fine-tuning (skipped when model.teacher is given)")
    prune_epochs: float = field_help(3.0, "epochs of pruning with distillation, starting from the dense model")
    batch_size: int = field_help(32, "training batch size")
    learning_rate: float = field_help(1e-4, "peak learning rate of both stages")
    prune_learning_rate: float | None = field_help(None, "learning rate of the pruning stage (null: learning_rate)")
    weight_decay: float = weight_decay_field(0.0)
    seed: int = field_help(0, "seed of the member split, initialisation and shuffling")
    threads: int | None = field_help(None, "torch CPU threads (null: the cores other processes leave idle)")
    device: str = device_field()
    precision: str = precision_field()

    def __post_init__(self) -> None:
        _positive(self, "dense_epochs", "prune_epochs", "learning_rate")
        if self.prune_learning_rate is not None:
            _positive(self, "prune_learning_rate")
        check_number(self.path, "weight_decay", self.weight_decay, minimum=0.0)
        check_int(self.path, "batch_size", self.batch_size, minimum=1)
        check_int(self.path, "seed", self.seed, minimum=0)
        if self.threads is not None:
            check_int(self.path, "threads", self.threads, minimum=1)
        check_placement(self.path, self.device, self.precision)


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
    attacks: list[str] = field_help(list(RECIPE_MIA_ATTACKS), f"membership attacks, from {list(RECIPE_MIA_ATTACKS)}")
    n_nonmembers: int = field_help(1000, "held-out examples of the train split (non-members), never trained on")
    n_resamples: int = field_help(1000, "bootstrap resamples for the confidence intervals (0: none)")
    canaries: CanarySection = section(CanarySection, "causal-lm only: canaries and their exposure")

    def __post_init__(self) -> None:
        for i, name in enumerate(self.attacks):
            if name not in RECIPE_MIA_ATTACKS:
                hint = " (reference and lira need reference or shadow models, which recipes do not train)" if (
                    name in ("reference", "lira")) else ""
                raise ConfigError(f"{self.key(f'attacks[{i}]')}: expected one of {list(RECIPE_MIA_ATTACKS)}, "
                                  f"got {name!r}{hint}")
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
    pruning: PruningConfig = section(lambda: PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5),
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

    @classmethod
    def from_dict(cls, payload: Any) -> Self:
        if isinstance(payload, dict) and payload.get("model") is None:
            raise ConfigError("model: required section missing; expected a mapping with name (a Hub name or a model "
                              "directory) and task")
        return super().from_dict(payload)

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
        for key, default in (("device", "auto"), ("precision", "fp32"), ("weight_decay", 0.0)):
            if payload["training"][key] == default:
                payload["training"].pop(key)
        payload["pruning"] = self.pruning.result_dict()
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
    node[last] = value
