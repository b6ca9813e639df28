"""Fine-tuning a text classifier with ``transformers.Trainer`` on CPU, and the pieces pruning recipes reuse:
tokenising a classification dataset whatever its text columns, and an accuracy metric that needs no Hub access
(``evaluate.load("accuracy")`` downloads its script)."""

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
from hfprune.utils import distributed
from hfprune.utils.config import ConfigMixin, check_choice, check_int, check_number, field_help
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


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


# device name -> whether this machine has it, in the order ``auto`` prefers them (the CPU is always there)
DEVICES: dict[str, Callable[[], bool]] = {"cuda": _cuda_available, "mps": _mps_available, "cpu": lambda: True}
# precision name -> the TrainingArguments fields that select it (fp32 sets none: today's arguments)
PRECISIONS: dict[str, dict[str, bool]] = {"fp32": {}, "bf16": {"bf16": True}, "fp16": {"fp16": True}}


def device_field(default: str = "auto") -> Any:
    """The ``device`` field of every config that runs a model (same help, same choices everywhere)."""
    return field_help(default, "where models train and run: auto (cuda, else mps, else cpu), cpu, cuda or mps",
                      choices=lambda: ["auto", *DEVICES])


def precision_field(default: str = "fp32") -> Any:
    """The ``precision`` field of every config that trains: fp32, or bf16 / fp16 mixed precision (autocast)."""
    return field_help(default, "training precision: fp32, or bf16 / fp16 mixed precision (fp16 needs a GPU; "
                      "pruning scores and masks stay in fp32)", choices=lambda: list(PRECISIONS))


# The training knobs every config that trains declares (FinetuneConfig, PruneClassifierConfig, MemberFinetuneConfig,
# CanaryLMConfig, a recipe's training section): one definition each, with each command's own default, and one
# validator. The configs keep flat fields rather than holding a TrainingSettings: those fields are their public
# constructors, JSON files and CLI flags. Epochs stay per config: names and help differ (dense_epochs, prune_epochs).
_KNOB_HELP = {
    "batch_size": "training batch size",
    "learning_rate": "peak learning rate (linear decay, 10% warm-up)",
    "seed": "seed of {seeds}",
    "threads": "torch CPU threads ({none}: the cores other processes leave idle)",
}


def training_field(name: str, default: Any = None, help: str | None = None, *, seeds: str = "",
                   none: str = "None", note: str = "") -> Any:
    """The field of training knob ``name`` (batch_size, learning_rate, seed, threads) with the shared help, or
    ``help`` where a config says more (a learning rate "of both stages"); ``seeds`` says what the seed decides,
    ``none`` how the file spells "not set" (null in a YAML recipe), ``note`` is appended."""
    return field_help(default, (help or _KNOB_HELP[name].format(seeds=seeds, none=none)) + note)


def check_training_knobs(owner: str, config: Any) -> None:
    """Validate the knobs ``config`` has of batch_size, seed, threads, device, precision and weight_decay (errors name
    ``owner.field``). Epochs and learning rates are checked by each config: their messages differ."""
    check_int(owner, "batch_size", config.batch_size, minimum=1)
    check_int(owner, "seed", config.seed, minimum=0)
    if getattr(config, "threads", None) is not None:
        check_int(owner, "threads", config.threads, minimum=1)
    check_placement(owner, config.device, config.precision)
    check_batch_split(f"{owner}.batch_size", config.batch_size)
    if hasattr(config, "weight_decay"):
        check_number(owner, "weight_decay", config.weight_decay, minimum=0)


def resolve_device(device: str | Any = "auto", owner: str = "device") -> str:
    """The device name (``cpu``, ``cuda``, ``mps``) a run uses: ``device`` itself, or for ``auto`` the first of
    cuda, mps, cpu this machine has. ``device`` may be a name or anything with a ``device`` attribute (a
    :class:`TrainingSettings`, a recipe's training section, a command's config). A device the machine lacks is a
    ConfigError naming ``owner`` (the field), raised before anything runs."""
    name = getattr(device, "device", device)
    if name == "auto":
        return next(candidate for candidate, available in DEVICES.items() if available())
    if name not in DEVICES:
        raise ConfigError(f"{owner}: expected one of {sorted(['auto', *DEVICES])}, got {name!r}")
    if not DEVICES[name]():
        raise ConfigError(f"{owner}: {name!r} is not available on this machine (torch sees no {name} device); "
                          "expected auto or cpu")
    return name


def process_device(device: str | Any = "auto", owner: str = "device") -> str:
    """The torch device this process puts models on: :func:`resolve_device`'s name, except that each process of a
    multi-GPU launch takes its own GPU (``cuda:<LOCAL_RANK>``) instead of all loading onto the first one."""
    name = resolve_device(device, owner)
    return f"cuda:{distributed.local_rank()}" if name == "cuda" and distributed.launched() else name


def check_batch_split(key: str, batch_size: int) -> None:
    """Under a launch of N processes each training batch is split into N equal shares (the same global batch, data
    order and step count as one process), so the batch size must be a multiple of N: a ConfigError naming ``key``
    otherwise, before anything runs."""
    processes = distributed.world_size()
    if batch_size % processes:
        raise ConfigError(f"{key}: expected a multiple of the {processes} launched processes (each batch is split "
                          f"equally between them), got {batch_size}")


def check_placement(owner: str, device: str, precision: str) -> None:
    """Validate a config's ``device`` and ``precision`` fields (``owner`` prefixes the field names in errors):
    known names, a device this machine has, and no fp16 on the CPU (torch's CPU autocast has no fp16 GradScaler
    path; bf16 on the CPU is allowed)."""
    resolved = resolve_device(device, f"{owner}.device")
    check_choice(owner, "precision", precision, list(PRECISIONS))
    if precision == "fp16" and resolved == "cpu":
        raise ConfigError(f"{owner}.precision: fp16 needs a GPU (device resolves to cpu); expected fp32 or bf16")


def weight_decay_field(default: float) -> Any:
    """The ``weight_decay`` field of every config that trains (same help everywhere; each entry point its default)."""
    return field_help(default, "AdamW weight decay of the training runs (0.01 by default for hfprune prune and "
                      "finetune, 0.0 for recipes: the values their published results were measured with)")


def epochs_text(value: float) -> str:
    """A training length as reports and model cards state it: ``1 epoch``, ``2.5 epochs``."""
    return f"{value:g} epoch" + ("" if value == 1 else "s")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """The optimisation settings of one ``Trainer`` run: dense fine-tuning, pruning with distillation, a shadow or
    member classifier, a canary LM. Each command's config keeps its own defaults (and names) and hands one of these
    to :func:`trainer_args`, so every run is built the same way."""

    epochs: float
    batch_size: int
    learning_rate: float
    seed: int
    weight_decay: float = weight_decay_field(0.0)
    warmup: float = 0.1  # a fraction of the training steps (warmup_steps < 1 is a ratio in transformers)
    logging_steps: int = 20
    device: str = device_field()
    precision: str = precision_field()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_training_knobs(owner, self)
        check_int(owner, "logging_steps", self.logging_steps, minimum=1)
        for name in ("epochs", "learning_rate"):
            check_number(owner, name, getattr(self, name), minimum=0, inclusive=False)
        check_number(owner, "weight_decay", self.weight_decay, minimum=0)
        check_number(owner, "warmup", self.warmup, minimum=0)


def trainer_args(output_dir: str | Path, settings: TrainingSettings | None = None, *, device: str = "auto",
                 args_class: type | None = None, **extra: Any) -> Any:
    """The ``TrainingArguments`` (or ``args_class``, e.g. ``DistillationArguments``) of every hfprune Trainer run,
    built in this one place: the settings' device (``use_cpu`` unless it resolves to a GPU) and precision (``bf16``
    / ``fp16``), no checkpoints and no evaluation during training (stages save their own result), no logging
    integrations, data order seeded like the model. ``settings=None`` builds evaluation-only arguments on
    ``device``. ``extra`` adds or overrides fields (eval batch size, distillation settings).

    Under a launch of N processes (DDP) every batch is split into N shares (accelerate's ``split_batches``):
    ``batch_size`` stays the global batch, so steps, schedule and data order are those of one process; evaluation
    batches are rounded up to a multiple of N."""
    from transformers import TrainingArguments

    placement = settings.device if settings is not None else device
    fields: dict[str, Any] = {"output_dir": str(output_dir), "use_cpu": resolve_device(placement) == "cpu",
                              "report_to": "none"}
    if settings is not None:
        fields.update(
            num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate, weight_decay=settings.weight_decay, warmup_steps=settings.warmup,
            eval_strategy="no", save_strategy="no", logging_steps=settings.logging_steps, seed=settings.seed,
            data_seed=settings.seed, dataloader_num_workers=0, **PRECISIONS[settings.precision],
        )
    fields = {**fields, **extra}
    distributed.check_together("a Trainer")
    if distributed.launched():
        share = distributed.world_size()
        fields["accelerator_config"] = {**fields.get("accelerator_config", {}), "split_batches": True}
        fields["per_device_eval_batch_size"] = -(-fields.get("per_device_eval_batch_size", 8) // share) * share
    return (args_class or TrainingArguments)(**fields)


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
    threads = config.threads or idle_cores()
    logger.info("training on %d CPU thread(s)", threads)
    distributed.join(resolve_device(config.device))

    @contextlib.contextmanager
    def output_folder() -> Iterator[Path]:
        with output_lock(target, "output_dir"), disk_full_reported(target), \
                staged_folder(target, publish(config.overwrite)) as staging:
            yield staging

    # every process trains and evaluates (data parallel); only the main one locks, writes and publishes
    with distributed.main_writes(output_folder) as staging, torch_threads(threads):
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
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, restoring the previous setting after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_and_save(
    config: FinetuneConfig, train: datasets.Dataset, evaluation: datasets.Dataset, staging: Path
) -> tuple[float, float]:
    """Train and evaluate in ``staging``, saving model, tokenizer, run config and metrics there."""
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from hfprune.models import load_model_for_task, load_tokenizer
    from hfprune.pruning.nonfinite import NonFiniteCallback

    set_seed(config.seed)
    names = label_names(train)
    tokenizer = load_tokenizer(config.model)
    model = load_model_for_task(
        config.model, "sequence-classification", num_labels=len(names),
        id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)},
    )
    columns = infer_text_columns(train)
    train_tok = tokenize_for_classification(train, tokenizer, columns, config.max_length)
    eval_tok = tokenize_for_classification(evaluation, tokenizer, columns, config.max_length)
    settings = TrainingSettings(config.epochs, config.batch_size, config.learning_rate, config.seed,
                                weight_decay=config.weight_decay, device=config.device, precision=config.precision)
    args = trainer_args(staging, settings, per_device_eval_batch_size=max(64, config.batch_size))
    trainer = Trainer(
        model=model, args=args, train_dataset=train_tok, eval_dataset=eval_tok, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_accuracy,
        callbacks=[NonFiniteCallback()],
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = trainer.evaluate()
    trainer.save_model(str(staging))
    config.save_pretrained(staging)
    atomic_write_json(staging / METRICS_FILE, {**metrics, "train_seconds": seconds, "n_train": len(train_tok)})
    return float(metrics["eval_accuracy"]), seconds
