"""Prune a text classifier end to end: dense teacher -> movement pruning with distillation -> evaluation -> save.

This is the README's main job on the embedded default (MiniLM on SST-2). Every step is an ordinary transformers
``Trainer`` run with hfprune's callback (pruning) and, optionally, its ``DistillationTrainer`` (the loss).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL
from hfprune.pruning.config import PruningConfig, scorer_names
from hfprune.training import check_training_knobs, device_field, precision_field, training_field
from hfprune.utils.config import ConfigMixin, check_fraction, check_int, check_number, field_help
from hfprune.utils.io import atomic_write_json, atomic_write_text, staged_folder
from hfprune.utils.lock import output_lock
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

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
    train_samples: int = field_help(3000, "Shuffled training examples used by both training stages.")
    train_skip: int = field_help(
        0, "Skip this many shuffled training examples before taking train_samples for pruning, e.g. the ones a "
           "given teacher was fine-tuned on (same seed), so the teacher's soft labels are not memorised labels.")
    teacher_epochs: float = field_help(1.0, "Epochs of dense fine-tuning (when no teacher is given).")
    prune_epochs: float = field_help(2.0, "Epochs of pruning (with distillation) on the same examples.")
    max_length: int = field_help(64, "Truncate inputs to this many tokens.")
    batch_size: int = training_field("batch_size", 32)
    learning_rate: float = training_field("learning_rate", 1e-4, "Peak learning rate of both stages.")
    head_sparsity: float = field_help(0.5, "Fraction of attention heads to remove.")
    ffn_sparsity: float = field_help(0.5, "Fraction of FFN neurons to remove.")
    scoring: str = field_help("movement", "Unit scorer (PruningConfig.scoring).", choices=scorer_names)
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
        check_int(owner, "train_samples", self.train_samples, minimum=1)
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
                             warmup_ratio=self.pruning_warmup_ratio, seed=self.seed, flops_seq_len=self.max_length)


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
    with output_lock(out, "output_dir"):
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


def _prune_classifier(config: PruneClassifierConfig, out: Path) -> PruneClassifierResult:
    from hfprune.training import idle_cores, torch_threads

    seconds: dict[str, float] = {}
    with torch_threads(config.threads or idle_cores()):
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
    config.save_pretrained(out)
    atomic_write_json(out / "report.json", dataclasses.asdict(result))
    atomic_write_text(out / "report.md", result.to_markdown(config))
    return result


def _dense_teacher(config: PruneClassifierConfig, out: Path) -> tuple[Path, float]:
    from hfprune.training import FinetuneConfig, finetune_classifier

    if config.teacher is not None:
        teacher = Path(config.teacher)
        if not (teacher / "config.json").is_file():
            raise ConfigError(f"teacher: {teacher} is not a saved model directory (no config.json)")
        return teacher, _evaluate_dir(config, teacher)
    result = finetune_classifier(FinetuneConfig(
        model=config.model, dataset=config.dataset, train_samples=config.train_samples, epochs=config.teacher_epochs,
        max_length=config.max_length, batch_size=config.batch_size, learning_rate=config.learning_rate,
        seed=config.seed, output_dir=str(out / "dense"), overwrite=config.overwrite, threads=config.threads,
        device=config.device, precision=config.precision,
    ))
    return Path(result.output_dir), result.accuracy


def _splits(config: PruneClassifierConfig, tokenizer) -> tuple[Any, Any]:
    """The tokenised pruning sample (the teacher's shuffle, from ``train_skip`` on) and evaluation split."""
    from hfprune.data import eval_split as default_eval_split
    from hfprune.data import load_dataset
    from hfprune.training import drop_unlabelled, tokenize_for_classification

    splits = load_dataset(config.dataset)
    eval_split = default_eval_split(config.dataset, available=splits)
    split_seed = config.seed if config.split_seed is None else config.split_seed
    train = drop_unlabelled(splits["train"]).shuffle(seed=split_seed)
    if config.train_skip >= len(train):
        raise ConfigError(f"train_skip: expected fewer than the {len(train)} labelled training examples of "
                          f"{config.dataset}, got {config.train_skip}")
    train = train.select(range(config.train_skip, min(config.train_skip + config.train_samples, len(train))))
    evaluation = drop_unlabelled(splits[eval_split])
    return (tokenize_for_classification(train, tokenizer, max_length=config.max_length),
            tokenize_for_classification(evaluation, tokenizer, max_length=config.max_length))


def _evaluate_dir(config: PruneClassifierConfig, model_dir: Path) -> float:
    correct = evaluate_examples(config, model_dir)
    return sum(correct) / len(correct)


def evaluate_examples(config: PruneClassifierConfig, model_dir: Path) -> list[int]:
    """1/0 per evaluation example (in dataset order): whether the model saved in ``model_dir`` classifies it right."""
    from hfprune.models import load_model_for_task, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_model_for_task(model_dir, "sequence-classification")
    return _predict_correct(config, model, tokenizer, _splits(config, tokenizer)[1])


def _predict_correct(config: PruneClassifierConfig, model, tokenizer, evaluation) -> list[int]:
    from transformers import DataCollatorWithPadding, Trainer

    from hfprune.training import trainer_args

    with tempfile.TemporaryDirectory() as scratch:
        args = trainer_args(scratch, device=config.device, per_device_eval_batch_size=128, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))
        return _correct(trainer.predict(evaluation))


def _correct(prediction: Any) -> list[int]:
    """1/0 per example from a Trainer ``PredictionOutput``: argmax of the logits equals the label."""
    import numpy as np

    logits = prediction.predictions
    if isinstance(logits, tuple):  # models returning extra outputs: logits come first
        logits = logits[0]
    return (np.asarray(logits).argmax(axis=-1) == np.asarray(prediction.label_ids)).astype(int).tolist()


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
    from transformers import DataCollatorWithPadding, Trainer

    from hfprune.distill import DistillationArguments, DistillationTrainer
    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.pruning import MovementPruningCallback, save_pruned, sparsity_report
    from hfprune.training import TrainingSettings, compute_accuracy, trainer_args

    tokenizer = load_tokenizer(dense_dir)
    student = load_model_for_task(dense_dir, "sequence-classification")
    train, evaluation = _splits(config, tokenizer)
    # weight decay 0.01 as in training.finetune_classifier (hfprune run's stages use 0.0; see issue 15)
    settings = TrainingSettings(config.prune_epochs, config.batch_size, config.learning_rate, config.seed,
                                weight_decay=0.01, device=config.device, precision=config.precision)
    pruning = config.pruning_config()
    with staged_folder(target, publish=None, kind="trainer") as scratch:  # the Trainer's working files, never kept
        args = trainer_args(
            scratch, settings, args_class=DistillationArguments, per_device_eval_batch_size=128,
            distill_alpha=config.distill_alpha if config.distill else 1.0,
            distill_temperature=config.distill_temperature,
            hidden_distill_weight=config.hidden_distill_weight if config.distill else 0.0,
        )
        common = dict(model=student, args=args, train_dataset=train, eval_dataset=evaluation,
                      processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_accuracy, callbacks=[MovementPruningCallback(pruning)])
        if config.distill:
            trainer = DistillationTrainer(teacher_model=copy.deepcopy(student), **common)
        else:
            trainer = Trainer(**common)
        trainer.train()
        correct = _correct(trainer.predict(evaluation))  # the accuracy is the mean of these, as evaluate() gives
    save_pruned(student, target, pruning_config=pruning, processing_class=tokenizer, overwrite=config.overwrite)
    return PrunedRun(sum(correct) / len(correct), sparsity_report(student, pruning.flops_seq_len).to_dict(), correct)
