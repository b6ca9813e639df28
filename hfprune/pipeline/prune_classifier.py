"""``hfprune prune``: a run with audits off. Dense teacher -> pruning with distillation -> evaluation -> save.

This is the README's main job on the embedded default (MiniLM on SST-2). The pruning and the evaluation are the
pipeline's stages (:func:`~hfprune.pipeline.stages.distill_pruned`, :func:`~hfprune.pipeline.stages.evaluate_model`)
run with the recipe :meth:`PruneClassifierConfig.recipe` describes; what is this command's own is the dense teacher
(``hfprune finetune``'s :func:`~hfprune.training.finetune_classifier`, or a given ``teacher``), the slice of the
training split it prunes on (``train_skip``, ``split_seed``) and its output folder (``dense/``, ``pruned/``, report).
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL
from hfprune.pruning.config import PruningConfig
from hfprune.training_args import (
    check_training_knobs,
    device_field,
    precision_field,
    training_field,
    weight_decay_field,
)
from hfprune.utils import distributed
from hfprune.utils.config import ConfigMixin, check_fraction, check_int, check_number, field_help
from hfprune.utils.io import atomic_write_json, atomic_write_text, staged_folder
from hfprune.utils.lock import output_lock
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)


def pruning_field(name: str) -> Any:
    """A field passed through to :class:`PruningConfig` unchanged: its default and help, declared there once."""
    source = PruningConfig.__dataclass_fields__[name]
    return field_help(source.default, source.metadata["help"], choices=source.metadata.get("choices"))

# PruningConfig field -> the field of PruneClassifierConfig it is set from, where the names differ
_PRUNING_FIELDS = {"warmup_ratio": "pruning_warmup_ratio", "flops_seq_len": "max_length"}


@dataclasses.dataclass
class PruneClassifierConfig(ConfigMixin):
    """Settings of ``prune_classifier``; the defaults run offline on 2 cores in about ten minutes."""

    config_file_name = "hfprune_run.json"

    model: str = field_help(DEFAULT_MODEL, "Base model name or directory (the default is embedded: works offline).")
    teacher: str | None = field_help(
        None, "Directory of an already fine-tuned dense model to prune; None fine-tunes `model` first.")
    dataset: str = field_help("glue/sst2", "Dataset name for hfprune.data.load_dataset.")
    train_samples: int = field_help(3000, "Shuffled training examples used by both training stages (at least 2).")
    train_skip: int = field_help(
        0, "Skip this many shuffled training examples before taking train_samples for pruning, e.g. the ones a "
           "given teacher was fine-tuned on (same seed), so the teacher's soft labels are not memorised labels.")
    teacher_epochs: float = field_help(1.0, "Epochs of dense fine-tuning (when no teacher is given).")
    prune_epochs: float = field_help(2.0, "Epochs of pruning (with distillation) on the same examples.")
    max_length: int = field_help(64, "Truncate inputs to this many tokens.")
    batch_size: int = training_field("batch_size", 32)
    learning_rate: float = training_field("learning_rate", 1e-4, "Peak learning rate of both stages.")
    weight_decay: float = weight_decay_field(0.01)
    head_sparsity: float = field_help(0.5, "Fraction of attention heads to remove.")
    ffn_sparsity: float = field_help(0.5, "Fraction of FFN neurons to remove.")
    scoring: str = pruning_field("scoring")
    latency_target: float = field_help(
        0.0, "Prune to this predicted speedup over the dense model instead of to sparsities (PruningConfig."
             "latency_target; head_sparsity and ffn_sparsity must then be 0). 0 turns it off.")
    latency_batch_size: int = pruning_field("latency_batch_size")
    latency_seq_len: int = pruning_field("latency_seq_len")
    latency_threads: int = pruning_field("latency_threads")
    min_heads_per_layer: int = pruning_field("min_heads_per_layer")
    min_neurons_per_layer: int = pruning_field("min_neurons_per_layer")
    pruning_warmup_ratio: float = field_help(
        0.1, "Fraction of pruning steps that only accumulate scores before any unit is removed.")
    distill: bool = field_help(True, "Distil from the dense teacher while pruning.")
    distill_alpha: float = field_help(0.5, "Weight of the hard-label loss when distilling.")
    distill_temperature: float = field_help(2.0, "Distillation temperature.")
    hidden_distill_weight: float = field_help(
        0.0, "Weight of the hidden-state MSE between student and teacher layers (CoFi-style); 0 turns it off.")
    seed: int = training_field("seed", 42, seeds="sampling, shuffling and initialisation")
    split_seed: int | None = field_help(
        None, "Seed of the shuffle that picks the train_skip/train_samples slice (None: seed). Fix it to repeat a "
              "run over seeds (initialisation, data order) on the same examples, away from a teacher's own.")
    threads: int | None = training_field("threads", note=". Gradients differ in the last bits between thread "
                                         "counts, so pin it to reproduce a run exactly.")
    device: str = device_field()
    precision: str = precision_field()
    output_dir: str = field_help("runs/prune-minilm-sst2", "Where the dense model, pruned model and report go.")
    overwrite: bool = field_help(False, "Replace an existing run in output_dir.")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "train_samples", self.train_samples, minimum=2)  # as a recipe's data.train_samples
        check_int(owner, "train_skip", self.train_skip, minimum=0)
        check_int(owner, "max_length", self.max_length, minimum=8)
        check_training_knobs(owner, self)
        if self.split_seed is not None:
            check_int(owner, "split_seed", self.split_seed, minimum=0)
        check_fraction(owner, "distill_alpha", self.distill_alpha, allow_one=True)
        check_number(owner, "hidden_distill_weight", self.hidden_distill_weight, minimum=0)
        for name in ("teacher_epochs", "prune_epochs", "learning_rate", "distill_temperature"):
            check_number(owner, name, getattr(self, name), minimum=0, inclusive=False)
        try:
            self.pruning_config()  # validates sparsities and scorer
        except ConfigError as exc:  # name this config's field too, not only the PruningConfig field it sets
            raise ConfigError(re.sub(r"^PruningConfig\.(\w+)",
                                     lambda m: f"{owner}.{_PRUNING_FIELDS.get(m[1], m[1])} sets {m[0]}",
                                     str(exc))) from None

    def pruning_config(self) -> PruningConfig:
        return PruningConfig(head_sparsity=self.head_sparsity, ffn_sparsity=self.ffn_sparsity, scoring=self.scoring,
                             warmup_ratio=self.pruning_warmup_ratio, seed=self.seed, flops_seq_len=self.max_length,
                             latency_target=self.latency_target, latency_batch_size=self.latency_batch_size,
                             latency_seq_len=self.latency_seq_len, latency_threads=self.latency_threads,
                             min_heads_per_layer=self.min_heads_per_layer,
                             min_neurons_per_layer=self.min_neurons_per_layer)

    def recipe(self) -> Recipe:
        """The recipe of this run as ``hfprune run`` would read it: audits, privacy and latency off, the whole
        evaluation split. The pipeline stages take their training, distillation and evaluation settings from it."""
        from hfprune.recipes.schema import Recipe

        return Recipe.from_dict({
            "name": "prune", "model": {"name": self.model, "teacher": self.teacher},
            "data": {"dataset": self.dataset, "train_samples": self.train_samples, "max_length": self.max_length},
            "training": {"dense_epochs": self.teacher_epochs, "prune_epochs": self.prune_epochs,
                         "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                         "weight_decay": self.weight_decay, "seed": self.seed, "threads": self.threads,
                         "device": self.device, "precision": self.precision},
            "pruning": dataclasses.asdict(self.pruning_config()),
            "distillation": {"enabled": self.distill, "alpha": self.distill_alpha,
                             "temperature": self.distill_temperature, "hidden_weight": self.hidden_distill_weight},
            "audits": {"robustness": {"enabled": False}, "privacy": {"enabled": False}, "latency_rounds": 0},
            "output": {"dir": self.output_dir},
        })


@dataclasses.dataclass
class PruneClassifierResult:
    dense_accuracy: float
    pruned_accuracy: float
    sparsity: dict[str, float]
    dense_dir: str
    pruned_dir: str
    seconds: dict[str, float]
    dataset: str | None = None
    """What the model card of ``pruned_dir`` names as training data and ``base_model`` (None for a ``--teacher``
    folder, whose origin this run does not know)."""
    base_model: str | None = None

    def to_markdown(self, config: PruneClassifierConfig) -> str:
        s = self.sparsity
        return "\n".join([
            f"# hfprune: {config.teacher if config.teacher is not None else config.model} on {config.dataset}", "",
            f"Pruning: {config.scoring} scores, {s['head_sparsity']:.0%} of heads and {s['ffn_sparsity']:.0%} of "
            f"FFN neurons removed, distillation {'on' if config.distill else 'off'}.", "",
            f"| model | dev accuracy | parameters | layer FLOPs (seq {s['seq_len']}) |",
            "|---|---|---|---|",
            f"| dense | {self.dense_accuracy:.4f} | {s['params_dense']:,} | {s['flops_dense']:,} |",
            f"| pruned | {self.pruned_accuracy:.4f} | {s['params']:,} | {s['flops']:,} |", "",
            "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items()), "",
        ])


def prune_classifier(config: PruneClassifierConfig) -> PruneClassifierResult:
    """Fine-tune (or load) the dense teacher, prune a copy while distilling, evaluate both, save everything."""
    from hfprune.training import check_output_dir

    out = Path(config.output_dir)
    check_output_dir(out / "pruned", config.overwrite)
    if config.overwrite:
        from hfprune.models import resolve_model
        from hfprune.utils.io import refuse_inputs_inside

        refuse_inputs_inside(out, {"teacher": config.teacher, "model": resolve_model(config.model)}, "output_dir")
    _check_inputs(config)
    from hfprune.training_args import resolve_device

    # under a launch every process trains; the main process alone locks and writes (the others' writes below are
    # skipped, and they read the dense model it published)
    distributed.join(resolve_device(config.device))
    with distributed.main_writes(lambda: output_lock(out, "output_dir")):
        return _prune_classifier(config, out)


def _check_inputs(config: PruneClassifierConfig) -> None:
    """The dataset loads and the model (or teacher) fits it, before anything is written."""
    from hfprune.data import load_dataset
    from hfprune.data.columns import check_layout
    from hfprune.models.checks import check_model_source
    from hfprune.training import label_names

    train = load_dataset(config.dataset, "train")
    check_layout(config.dataset, {"train": train}, key="dataset")
    labels = label_names(train)
    key, source = ("teacher", config.teacher) if config.teacher is not None else ("model", config.model)
    check_model_source(key, source, labels=labels, max_length=config.max_length)
    config.recipe()  # the stages' settings validate as a recipe's


def _prune_classifier(config: PruneClassifierConfig, out: Path) -> PruneClassifierResult:
    from hfprune.training import torch_threads

    seconds: dict[str, float] = {}
    with torch_threads(config.threads):
        started = time.perf_counter()
        dense_dir, dense_accuracy = _dense_teacher(config, out)
        # a --teacher is only evaluated: its time is not a fine-tuning time
        seconds["dense evaluation" if config.teacher is not None else "dense fine-tuning"] = (
            time.perf_counter() - started)
        started = time.perf_counter()
        pruned_accuracy, report = prune_and_save(config, dense_dir, out / "pruned")
        seconds["pruning"] = time.perf_counter() - started
    result = PruneClassifierResult(dense_accuracy, pruned_accuracy, report, str(dense_dir), str(out / "pruned"),
                                   seconds, config.dataset, config.model if config.teacher is None else None)
    def write_report() -> None:
        config.save_pretrained(out)
        atomic_write_json(out / "report.json", dataclasses.asdict(result))
        atomic_write_text(out / "report.md", result.to_markdown(config))

    distributed.main_only(write_report)
    return result


def _dense_teacher(config: PruneClassifierConfig, out: Path) -> tuple[Path, float]:
    """The dense model to prune and its accuracy: the given ``teacher`` (evaluated only), else ``config.model``
    fine-tuned by ``hfprune finetune`` on the first ``train_samples`` of the ``seed`` shuffle into ``out/dense``."""
    from hfprune.training import FinetuneConfig, finetune_classifier

    if config.teacher is not None:
        teacher = Path(config.teacher)
        if not (teacher / "config.json").is_file():
            raise ConfigError(f"teacher: {teacher} is not a saved model directory (no config.json)")
        correct = evaluate_examples(config, teacher)
        return teacher, sum(correct) / len(correct)
    result = finetune_classifier(FinetuneConfig(
        model=config.model, dataset=config.dataset, train_samples=config.train_samples, epochs=config.teacher_epochs,
        max_length=config.max_length, batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, seed=config.seed, output_dir=str(out / "dense"), overwrite=config.overwrite,
        threads=config.threads, device=config.device, precision=config.precision,
    ))
    return Path(result.output_dir), result.accuracy


def pruning_examples(config: PruneClassifierConfig, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
    """The tokenised examples pruning trains on: the teacher's shuffle of the labelled training split (seed
    ``split_seed``, else ``seed``), ``train_samples`` of them from ``train_skip`` on."""
    from hfprune.data import load_dataset
    from hfprune.training import drop_unlabelled, tokenize_for_classification

    split_seed = config.seed if config.split_seed is None else config.split_seed
    train = drop_unlabelled(load_dataset(config.dataset, "train")).shuffle(seed=split_seed)
    if config.train_skip >= len(train):
        raise ConfigError(f"train_skip: expected fewer than the {len(train)} labelled training examples of "
                          f"{config.dataset}, got {config.train_skip}")
    train = train.select(range(config.train_skip, min(config.train_skip + config.train_samples, len(train))))
    return tokenize_for_classification(train, tokenizer, max_length=config.max_length)


def evaluate_examples(config: PruneClassifierConfig, model_dir: Path) -> list[int]:
    """1/0 per evaluation example (in dataset order): whether the model saved in ``model_dir`` classifies it right."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.pipeline.stages import evaluate_model

    loaded = load_model_dir(model_dir, device=config.device)
    return _correct(evaluate_model(loaded.model, loaded.tokenizer, config.recipe()))


def _correct(quality: Any) -> list[int]:
    """The per-example 1/0 correctness of a classifier's :class:`~hfprune.pipeline.stages.Quality`."""
    return [int(value) for value in quality.per_example]


@dataclasses.dataclass
class PrunedRun:
    """What :func:`prune_and_evaluate` measured: accuracy, sparsity report and the per-example correctness."""

    accuracy: float
    report: dict[str, float]
    correct: list[int]


def prune_and_save(config: PruneClassifierConfig, dense_dir: Path, target: Path) -> tuple[float, dict[str, float]]:
    """Prune a copy of the fine-tuned model in ``dense_dir`` (distilling from it when ``config.distill``), save it
    to ``target`` and return its accuracy and sparsity report; ``config.teacher``/``output_dir`` are not used."""
    run = prune_and_evaluate(config, dense_dir, target)
    return run.accuracy, run.report


def prune_and_evaluate(config: PruneClassifierConfig, dense_dir: Path, target: Path) -> PrunedRun:
    """:func:`prune_and_save`, also returning which evaluation examples the pruned model classifies correctly."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.pipeline.stages import distill_pruned, evaluate_model
    from hfprune.pruning import save_pruned, sparsity_report

    recipe, pruning = config.recipe(), config.pruning_config()
    dense = load_model_dir(dense_dir, device=config.device)
    train = pruning_examples(config, dense.tokenizer)
    # the Trainer's working files, never kept (under a launch, the other processes' in a private folder)
    with distributed.main_writes(lambda: staged_folder(target, publish=None, kind="trainer")) as scratch:
        student, _ = distill_pruned(recipe, pruning, dense.model, dense.tokenizer, train, scratch)
    distributed.main_only(lambda: save_pruned(student, target, pruning_config=pruning,
                                              processing_class=dense.tokenizer, overwrite=config.overwrite))
    quality = distributed.main_only(lambda: evaluate_model(student, dense.tokenizer, recipe))
    return PrunedRun(quality.value, sparsity_report(student, pruning.flops_seq_len).to_dict(), _correct(quality))
