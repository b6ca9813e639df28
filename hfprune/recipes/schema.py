"""The recipe schema: one YAML file = model + data + training + pruning + distillation + audits + output.

A recipe is a tree of dataclasses. Loading is strict and complete before anything runs: an unknown key, a value of
the wrong type or out of range is a :class:`~hfprune.errors.ConfigError` naming the dotted key
(``pruning.head_sparsity``) and what is allowed; a missing, unreadable, non-UTF-8 or malformed file names the file;
paths the recipe points at (model directory, data folder) are checked too. Nothing is written by loading.

The file is read by :mod:`hfprune.recipes.loading`; the ``audits`` sections live in
:mod:`hfprune.recipes.audit_sections`, their base in :mod:`hfprune.recipes.section`.
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
from hfprune.recipes.audit_sections import AuditsSection
from hfprune.recipes.families_spec import check_families
from hfprune.recipes.section import Section, check_positive, section
from hfprune.training_args import (
    check_training_knobs,
    device_field,
    precision_field,
    training_field,
    weight_decay_field,
)
from hfprune.utils.config import (
    check_choice,
    check_fraction,
    check_int,
    check_number,
    field_help,
    fingerprint,
)

TASKS = ("sequence-classification", "causal-lm")
# pruning fields a sweep level may set
SWEEP_FIELDS = ("head_sparsity", "ffn_sparsity", "weight_sparsity")


@dataclasses.dataclass
class PruningSection(PruningConfig, Section):
    """A recipe's ``pruning`` section: :class:`~hfprune.pruning.config.PruningConfig`, whose errors name
    ``pruning.head_sparsity`` (also in the sweep levels derived from it)."""

    path: ClassVar[str] = "pruning"


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
        check_positive(self, "prune_epochs", "learning_rate")
        if self.prune_learning_rate is not None:
            check_positive(self, "prune_learning_rate")
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
        check_positive(self, "temperature")
        check_number(self.path, "hidden_weight", self.hidden_weight, minimum=0.0)


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
        """The recipe without the keys that do not change results (output, sweep, name, description, threads,
        audits.control), and without training.device / precision / weight_decay at their defaults (auto, fp32, 0.0):
        runs recorded before those keys existed keep their fingerprint and resume; another value changes the numbers,
        so it is a new run."""
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
        # audits.control decides which stages a run has, not how any stage is computed: a control added to a
        # finished run trains the control alone
        del payload["audits"]["control"]
        privacy = payload["audits"]["privacy"]
        if not privacy["n_shadows"]:  # no shadow trained: the mode changes nothing, and older runs keep resuming
            del privacy["n_shadows"], privacy["shadows"]
        return payload
