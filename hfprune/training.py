"""Fine-tuning a text classifier with ``transformers.Trainer`` on CPU, and the pieces pruning recipes reuse:
tokenising a classification dataset whatever its text columns, and an accuracy metric that needs no Hub access
(``evaluate.load("accuracy")`` downloads its script). The training settings and the one ``TrainingArguments``
builder live in :mod:`hfprune.training_args`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hfprune.errors import ConfigError, DataError
from hfprune.models import DEFAULT_MODEL
from hfprune.training_args import (
    TrainingSettings,
    check_training_knobs,
    device_field,
    precision_field,
    resolve_device,
    trainer_args,
    training_field,
    weight_decay_field,
)
from hfprune.utils import distributed
from hfprune.utils.config import ConfigMixin, check_int, check_number, field_help
from hfprune.utils.io import atomic_write_json, disk_full_reported, replace_folder, staged_folder
from hfprune.utils.lock import LOCK_FILE, output_lock
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets
    from transformers import EvalPrediction, PreTrainedTokenizerBase

logger = get_logger(__name__)

# files whose presence means "a model was saved here"
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
METRICS_FILE = "eval_results.json"


# --- reusable pieces ----------------------------------------------------------------------------------------------


def infer_text_columns(dataset: datasets.Dataset, label_column: str = "label") -> list[str]:
    """The text column(s) of one example, ``sentence``; ``sentence1``, ``sentence2``... (see
    :func:`hfprune.data.columns.text_columns`)."""
    from hfprune.data.columns import text_columns

    return list(text_columns(dataset, label_column))


def label_names(dataset: datasets.Dataset, label_column: str = "label") -> list[str]:
    """Class names from the label column's ``ClassLabel`` (ids as strings when the column is a plain integer)."""
    if label_column not in dataset.features:
        raise DataError(f"dataset columns {dataset.column_names}: no label column {label_column!r}")
    feature = dataset.features[label_column]
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    labels = np.asarray(dataset[label_column])
    return [str(i) for i in range(int(labels.max()) + 1)]


def drop_unlabelled(dataset: datasets.Dataset, label_column: str = "label") -> datasets.Dataset:
    """Remove rows whose label is negative (-1 marks unlabelled test rows in GLUE), logging how many went."""
    labels = np.asarray(dataset[label_column])
    keep = np.flatnonzero(labels >= 0)
    if len(keep) == len(labels):
        return dataset
    logger.warning("dropping %d of %d rows without a label (label < 0)", len(labels) - len(keep), len(labels))
    return dataset.select(keep.tolist())


def tokenize_for_classification(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    text_columns: list[str] | None = None,
    max_length: int = 128,
    label_column: str = "label",
) -> datasets.Dataset:
    """Tokenise one text column (or a pair, e.g. RTE's sentence1/sentence2) with truncation to ``max_length``,
    keeping only the model inputs and the label. Padding is left to the collator (dynamic, per batch)."""
    columns = text_columns or infer_text_columns(dataset, label_column)
    missing = [c for c in [*columns, label_column] if c not in dataset.column_names]
    if missing:
        raise DataError(f"dataset columns {dataset.column_names}: missing {missing}")

    def encode(batch: dict[str, list]) -> Any:
        return tokenizer(*(batch[c] for c in columns), truncation=True, max_length=max_length)

    drop = [c for c in dataset.column_names if c != label_column]
    return dataset.map(encode, batched=True, remove_columns=drop, desc="tokenising")


def compute_accuracy(eval_pred: EvalPrediction | tuple[Any, Any]) -> dict[str, float]:
    """``compute_metrics`` for Trainer: the fraction of argmax predictions equal to the labels."""
    logits, labels = eval_pred[0], eval_pred[1]
    if isinstance(logits, tuple):  # models returning extra outputs: logits come first
        logits = logits[0]
    predictions = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": float((predictions == np.asarray(labels)).mean())}


# --- output directories ---------------------------------------------------------------------------------------------


def contains_model(directory: Path) -> bool:
    """True when ``directory`` holds a saved model (a config or weights file)."""
    return any((directory / name).is_file() for name in MODEL_FILES)


def check_output_dir(directory: Path, overwrite: bool) -> None:
    """Refuse a directory that already holds a model unless ``overwrite``; a file in its place is always an error."""
    from hfprune.utils.io import refuse_symlink

    refuse_symlink(directory, "output_dir", "a folder, not a link (a model is never written or replaced through one)")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"output_dir: {directory} exists and is not a directory")
    if directory.is_dir() and contains_model(directory) and not overwrite:
        raise ConfigError(
            f"output_dir: {directory} already holds a model; choose another directory or pass --overwrite "
            "(the old model is replaced only once the new one is complete)"
        )


def publish(overwrite: bool) -> Callable[[Path, Path], None]:
    """:func:`publish_directory` with ``overwrite`` bound: a ``publish`` for :func:`~hfprune.utils.io.staged_folder`."""
    return lambda staging, target: publish_directory(staging, target, overwrite)


def publish_directory(staging: Path, target: Path, overwrite: bool) -> None:
    """Move a finished ``staging`` folder to ``target`` without ever writing over a model in place.

    A target holding a model (allowed by ``overwrite``) is swapped out whole and deleted after the new one is in
    place; into an existing target without a model the new files are moved one by one.
    """
    check_output_dir(target, overwrite)
    if target.is_dir() and not contains_model(target) and any(target.iterdir()):
        for entry in staging.iterdir():
            destination = target / entry.name
            if destination.is_dir():
                shutil.rmtree(destination)
            os.replace(entry, destination)
        staging.rmdir()
        return
    if (target / LOCK_FILE).is_file():  # the run's lock moves along (a rename keeps the flock) and stays held
        os.replace(target / LOCK_FILE, staging / LOCK_FILE)
    replace_folder(staging, target)


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete ``checkpoint-<step>`` folder of a Trainer run in ``output_dir``, or None.

    ``Trainer`` writes a checkpoint in place and ``trainer_state.json`` last; a process killed mid-save leaves a
    folder without it (or with it cut short). ``transformers.trainer_utils.get_last_checkpoint`` would pick that
    folder and the resume would fail, so this one skips it: pass the result to
    ``trainer.train(resume_from_checkpoint=...)``.
    """
    import json
    import re

    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", entry.name)
        if match and entry.is_dir():
            steps.append((int(match.group(1)), entry))
    for step, entry in sorted(steps, reverse=True):
        try:
            state = json.loads((entry / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("skipping %s: incomplete (no readable trainer_state.json; interrupted mid-save?)", entry)
            continue
        if isinstance(state, dict) and state.get("global_step") == step:
            return str(entry)
    return None


# --- fine-tuning -------------------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    """The last path component of a model or dataset name, made safe for a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in name.rsplit("/", 1)[-1].lower()) or "model"


@dataclasses.dataclass
class FinetuneConfig(ConfigMixin):
    """What ``finetune_classifier`` trains, on what, and where the result goes."""

    config_file_name = "hfprune_finetune.json"

    model: str = field_help(DEFAULT_MODEL, "model name or directory (the default is embedded: works offline)")
    dataset: str = field_help("glue/sst2", "dataset name for hfprune.data.load_dataset")
    train_split: str = field_help("train", "split to train on")
    eval_split: str | None = field_help(None, "split to evaluate on (None: validation, else test)")
    train_samples: int | None = field_help(3000, "train on this many shuffled examples (None: all)")
    epochs: float = field_help(1.0, "training epochs")
    max_length: int = field_help(64, "truncate inputs to this many tokens")
    batch_size: int = training_field("batch_size", 32)
    learning_rate: float = training_field("learning_rate", 1e-4)
    weight_decay: float = weight_decay_field(0.01)
    seed: int = training_field("seed", 42, seeds="sampling, head initialisation and shuffling")
    threads: int | None = training_field("threads")
    device: str = device_field()
    precision: str = precision_field()
    output_dir: str | None = field_help(None, "where to save the model (None: runs/finetune/<model>-<dataset>)")
    overwrite: bool = field_help(False, "replace a model already saved in output_dir")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.train_samples is not None:
            check_int(owner, "train_samples", self.train_samples, minimum=1)
        check_int(owner, "max_length", self.max_length, minimum=8)
        check_training_knobs(owner, self)
        for name in ("epochs", "learning_rate"):
            check_number(owner, name, getattr(self, name), minimum=0, inclusive=False)

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path("runs") / "finetune" / f"{_slug(self.model)}-{_slug(self.dataset)}"


@dataclasses.dataclass
class FinetuneResult:
    """What a fine-tuning run measured and where it saved the model."""

    accuracy: float
    eval_split: str
    n_train: int
    n_eval: int
    train_seconds: float
    output_dir: str


def finetune_classifier(config: FinetuneConfig) -> FinetuneResult:
    """Fine-tune ``config.model`` on ``config.dataset`` with Trainer on CPU, evaluate accuracy, save the model.

    Training happens in a hidden staging folder next to the output directory, which is published only after the
    model, tokenizer, config and metrics are all written.
    """
    from hfprune.data import eval_split as default_eval_split
    from hfprune.data import load_dataset
    from hfprune.data.columns import check_layout
    from hfprune.models.checks import check_model_source

    target = config.resolved_output_dir()
    check_output_dir(target, config.overwrite)
    if config.overwrite:
        from hfprune.models import resolve_model
        from hfprune.utils.io import refuse_inputs_inside

        refuse_inputs_inside(target, {"model": resolve_model(config.model)}, "output_dir")
    splits = load_dataset(config.dataset)
    eval_split = default_eval_split(config.dataset, config.eval_split, available=splits)
    for split in (config.train_split, eval_split):
        if split not in splits:
            raise DataError(f"dataset {config.dataset!r} has no split {split!r}; available: {sorted(splits)}")
    train = drop_unlabelled(splits[config.train_split]).shuffle(seed=config.seed)
    if config.train_samples is not None:
        train = train.select(range(min(config.train_samples, len(train))))
    evaluation = drop_unlabelled(splits[eval_split])
    check_layout(config.dataset, {config.train_split: train, eval_split: splits[eval_split]}, key="dataset")
    check_model_source("model", config.model, labels=label_names(train), max_length=config.max_length)
    distributed.join(resolve_device(config.device))

    @contextlib.contextmanager
    def output_folder() -> Iterator[Path]:
        with output_lock(target, "output_dir"), disk_full_reported(target), \
                staged_folder(target, publish(config.overwrite)) as staging:
            yield staging

    # every process trains and evaluates (data parallel); only the main one locks, writes and publishes
    with distributed.main_writes(output_folder) as staging, torch_threads(config.threads) as threads:
        logger.info("training on %d CPU thread(s)", threads)
        accuracy, seconds = _train_and_save(config, train, evaluation, staging)
    logger.info("saved the fine-tuned model to %s", target)
    return FinetuneResult(accuracy, eval_split, len(train), len(evaluation), seconds, str(target))


def idle_cores() -> int:
    """CPU cores not busy with other processes: the core count minus the 1-minute load average, at least 1.

    On a shared 2-core machine with one other busy process, 2 torch threads ran a MiniLM training step 4.5x slower
    than 1 thread (6.9 s vs 1.5 s, OpenMP threads waiting on each other), so the default avoids oversubscribing.
    """
    cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, cores - busy)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run the block with ``count`` torch intra-op threads (``None``: :func:`idle_cores`), restoring the previous
    setting after; yields the count used."""
    import torch

    count = count or idle_cores()
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


def train_classifier(
    config: Any, names: list[str], staging: Path,
    tokenize: Callable[[PreTrainedTokenizerBase], tuple[datasets.Dataset, datasets.Dataset | None]],
    **args_extra: Any,
) -> tuple[Any, Any, float]:
    """The Trainer run every classifier fine-tune shares (``hfprune finetune``, member, reference and shadow models):
    seed, load ``config.model`` with a fresh head over ``names``, tokenise with ``tokenize`` (train, evaluation or
    None), train with :func:`~hfprune.training_args.trainer_args` of the config's knobs (``args_extra`` added),
    stopping on a non-finite loss, then save model, tokenizer and ``config`` into ``staging``. Returns (trainer,
    train output, training seconds). ``config`` has the training knobs and ``save_pretrained``."""
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.pruning.nonfinite import NonFiniteCallback

    set_seed(config.seed)  # before the model loads: the seed decides the new head's initialisation
    tokenizer = load_tokenizer(config.model)
    model = load_model_for_task(
        config.model, "sequence-classification", num_labels=len(names),
        id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)},
    )
    train, evaluation = tokenize(tokenizer)
    settings = TrainingSettings(config.epochs, config.batch_size, config.learning_rate, config.seed,
                                weight_decay=config.weight_decay, device=config.device, precision=config.precision)
    trainer = Trainer(
        model=model, args=trainer_args(staging, settings, **args_extra), train_dataset=train,
        eval_dataset=evaluation, processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=None if evaluation is None else compute_accuracy, callbacks=[NonFiniteCallback()],
    )
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(staging))
    config.save_pretrained(staging)
    return trainer, output, seconds


def _train_and_save(
    config: FinetuneConfig, train: datasets.Dataset, evaluation: datasets.Dataset, staging: Path
) -> tuple[float, float]:
    """Train and evaluate in ``staging``, saving model, tokenizer, run config and metrics there."""
    columns = infer_text_columns(train)

    def tokenize(tokenizer: PreTrainedTokenizerBase) -> tuple[datasets.Dataset, datasets.Dataset]:
        return (tokenize_for_classification(train, tokenizer, columns, config.max_length),
                tokenize_for_classification(evaluation, tokenizer, columns, config.max_length))

    trainer, _, seconds = train_classifier(config, label_names(train), staging, tokenize,
                                           per_device_eval_batch_size=max(64, config.batch_size))
    metrics = trainer.evaluate()
    atomic_write_json(staging / METRICS_FILE,
                      {**metrics, "train_seconds": seconds, "n_train": len(trainer.train_dataset)})
    return float(metrics["eval_accuracy"]), seconds
