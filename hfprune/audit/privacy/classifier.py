"""Fine-tune a classifier on a member set small enough to memorise, recording the membership split.

Membership inference needs a model that could memorise: audits of privacy fine-tune on at most a few thousand
examples for several epochs, so the dense model shows a train/held-out gap. Members are a random slice of the
dataset's train split, non-members a disjoint random slice of the same split (same distribution); the split is
saved next to the model as ``membership_split.json`` so the audit uses exactly it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.audit.privacy.split import MembershipSplit, draw_split
from hfprune.errors import ConfigError, DataError
from hfprune.models import DEFAULT_MODEL
from hfprune.training_args import (
    check_training_knobs,
    device_field,
    precision_field,
    training_field,
    weight_decay_field,
)
from hfprune.utils.config import ConfigMixin, check_int, field_help
from hfprune.utils.io import atomic_write_json, staged_folder
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

logger = get_logger(__name__)

RUN_FILE = "train_results.json"


@dataclass
class MemberFinetuneConfig(ConfigMixin):
    """A classifier fine-tuned on ``n_members`` examples for several epochs, its split recorded for the audit."""

    config_file_name = "hfprune_member_finetune.json"

    model: str = field_help(DEFAULT_MODEL, "model name or directory (the default is embedded: works offline)")
    dataset: str = field_help("glue/sst2", "classification dataset (a text or a sentence pair per example) for "
                              "hfprune.data.load_dataset")
    source_split: str = field_help("train", "split the members and non-members are drawn from")
    n_members: int = field_help(2000, "examples fine-tuned on (members); a few thousand or fewer, to memorise")
    n_nonmembers: int = field_help(2000, "held-out examples of the same split (non-members)")
    epochs: float = field_help(5.0, "training epochs (several, so the dense model memorises)")
    max_length: int = field_help(64, "truncate inputs to this many tokens (the audit uses the same)")
    batch_size: int = training_field("batch_size", 16)
    learning_rate: float = training_field("learning_rate", 1e-4)
    weight_decay: float = weight_decay_field(0.0)
    seed: int = training_field("seed", 0, seeds="the split, head initialisation and shuffling")
    split_seed: int | None = field_help(None, "seed of the member split alone (None: seed); several seeds of one "
                                        "run keep the same members")
    threads: int | None = training_field("threads")
    device: str = device_field()
    precision: str = precision_field()
    output_dir: str | None = field_help(None, "where to save (None: runs/privacy/<model>-<dataset>-seed<seed>)")
    overwrite: bool = field_help(False, "replace a model already saved in output_dir")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, minimum in (("n_members", 1), ("n_nonmembers", 1), ("max_length", 8)):
            check_int(owner, name, getattr(self, name), minimum=minimum)
        check_training_knobs(owner, self)
        if self.split_seed is not None:
            check_int(owner, "split_seed", self.split_seed, minimum=0)
        for name in ("epochs", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigError(f"{owner}.{name}: expected a positive number, got {value!r}")

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        model = self.model.rstrip("/").rsplit("/", 1)[-1]
        return Path("runs") / "privacy" / f"{model}-{self.dataset.replace('/', '-')}-seed{self.seed}"


@dataclass
class MemberFinetuneRun:
    """Where a member fine-tuning run saved its model, and the split it recorded."""

    output_dir: str
    split: MembershipSplit
    train_loss: float
    train_seconds: float


def draw_classification_split(config: MemberFinetuneConfig, exclude: MembershipSplit | None = None) -> MembershipSplit:
    """Members and non-members from ``config.dataset[source_split]``, disjoint from ``exclude``'s examples."""
    from hfprune.data import load_dataset
    from hfprune.data.columns import examples
    from hfprune.training import drop_unlabelled

    dataset = drop_unlabelled(load_dataset(config.dataset, config.source_split))
    try:
        texts = examples(dataset)
    except DataError as exc:
        raise DataError(f"dataset {config.dataset!r}: {exc}") from None
    excluded = frozenset() if exclude is None else frozenset({*exclude.member_ids, *exclude.nonmember_ids})
    seed = config.seed if config.split_seed is None else config.split_seed
    members, nonmembers = draw_split(len(dataset), config.n_members, config.n_nonmembers, seed, excluded)
    labels = dataset["label"]
    return MembershipSplit(
        dataset=config.dataset, source_split=config.source_split, seed=seed,
        member_ids=members, nonmember_ids=nonmembers,
        member_texts=[texts[i] for i in members], nonmember_texts=[texts[i] for i in nonmembers],
        member_labels=[int(labels[i]) for i in members], nonmember_labels=[int(labels[i]) for i in nonmembers],
        max_length=config.max_length, task="sequence-classification",
        extra={"label_names": _label_names(dataset)},
    )


def _label_names(dataset: datasets.Dataset) -> list[str]:
    from hfprune.training import label_names

    return label_names(dataset)


def finetune_on_members(config: MemberFinetuneConfig, exclude: MembershipSplit | None = None) -> MemberFinetuneRun:
    """Fine-tune ``config.model`` on the members only, save model, tokenizer, config and split, return the run.

    ``exclude``: draw the examples disjoint from this split, to train a reference or shadow model that never saw
    any audited example. Training happens in a hidden staging folder published once everything is written.
    """
    from hfprune.training import check_output_dir, publish, torch_threads

    target = config.resolved_output_dir()
    check_output_dir(target, config.overwrite)
    split = draw_classification_split(config, exclude)
    with staged_folder(target, publish(config.overwrite)) as staging:
        with torch_threads(config.threads):
            loss, seconds = _train_and_save(config, split, staging)
        split.save(staging)
    logger.info("fine-tuned on %d members (train loss %.3f, %.0f s); saved to %s", split.n_members, loss, seconds,
                target)
    return MemberFinetuneRun(str(target), split, loss, seconds)


def _train_and_save(config: MemberFinetuneConfig, split: MembershipSplit, staging: Path) -> tuple[float, float]:
    import datasets

    from hfprune.data.columns import encode
    from hfprune.training import train_classifier

    def tokenize(tokenizer: PreTrainedTokenizerBase) -> tuple[datasets.Dataset, None]:
        encoded = encode(tokenizer, split.member_texts, truncation=True, max_length=config.max_length)
        return datasets.Dataset.from_dict({**encoded, "labels": split.member_labels}), None

    _, output, seconds = train_classifier(config, split.extra["label_names"], staging, tokenize)
    atomic_write_json(staging / RUN_FILE, {"train_loss": output.training_loss, "train_seconds": seconds,
                                           "n_members": split.n_members})
    return float(output.training_loss), seconds
