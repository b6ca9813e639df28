"""The settings of every hfprune ``Trainer`` run and the one place their ``TrainingArguments`` are built: the
training knobs' fields (batch size, learning rate, seed, threads, device, precision, weight decay) that every config
declares with its own defaults, their one validator, device and precision resolution, and ``trainer_args``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfprune.errors import ConfigError
from hfprune.utils import distributed
from hfprune.utils.config import check_choice, check_int, check_number, field_help


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
