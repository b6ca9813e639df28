"""A causal LM to audit offline: a small GPT-2 trained here from scratch, with canaries, recording its split.

No GPT-2 weights exist offline, so the offline path trains a byte-level BPE tokenizer with ``tokenizers`` and a
small ``GPT2Config`` model with ``transformers.Trainer`` on real text (Jane Austen or Tiny Shakespeare, one
training example per paragraph). Members are the paragraphs trained on, non-members held-out paragraphs of the same
corpus; canaries (Carlini et al. 2019) are inserted with their repetition counts. Where a network exists,
``base_model="gpt2"`` fine-tunes the Hub model instead (its pre-fine-tuning weights are then the natural
reference model). The run saves model, tokenizer, ``membership_split.json`` and ``canaries.json`` together.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.audit.privacy.canaries import DEFAULT_TEMPLATE, DIGITS, CanarySet, insert_canaries, make_canaries
from hfprune.audit.privacy.split import MembershipSplit, draw_split
from hfprune.errors import ConfigError
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
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)

BOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"
RUN_FILE = "train_results.json"


@dataclass
class CanaryLMConfig(ConfigMixin):
    """A causal LM trained on members of a text corpus with canaries inserted (offline GPT-2 by default)."""

    config_file_name = "hfprune_canary_lm.json"

    dataset: str = field_help("jane_austen", "text corpus for hfprune.data.load_dataset (one row per paragraph)")
    source_split: str = field_help("train", "split the members and non-members are drawn from")
    base_model: str | None = field_help(
        None, "None: a GPT-2 built from GPT2Config and trained from scratch with a tokenizer trained here (offline); "
        "a name such as 'gpt2': fine-tune that pretrained model (needs the Hub or a local copy)")
    n_members: int = field_help(2000, "paragraphs trained on (members)")
    n_nonmembers: int = field_help(500, "held-out paragraphs of the same corpus (non-members)")
    min_chars: int = field_help(40, "skip paragraphs shorter than this (headings); duplicates are always skipped")
    max_length: int = field_help(64, "truncate every example to this many tokens (the audit uses the same)")
    vocab_size: int = field_help(2048, "BPE vocabulary of the tokenizer trained here (offline path)")
    n_layer: int = field_help(2, "transformer layers (offline path)")
    n_embd: int = field_help(128, "hidden size (offline path)")
    n_head: int = field_help(4, "attention heads (offline path)")
    canary_repetitions: list[int] = field_help([0, 1, 10, 100], "repetition counts; 0 = control canaries never "
                                               "inserted; empty: no canaries (e.g. for a reference model)")
    canaries_per_repetition: int = field_help(10, "canaries drawn for each repetition count (from 10 on, the mean "
                                              "exposure gets an interval)")
    canary_digits: int = field_help(4, "secret length: |R| = len(canary_alphabet) ** canary_digits")
    canary_alphabet: str = field_help(DIGITS, "characters a secret is drawn from")
    canary_template: str = field_help(DEFAULT_TEMPLATE, "canary sentence with a {secret} placeholder")
    epochs: float = field_help(10.0, "training epochs (several, so the model can memorise)")
    batch_size: int = training_field("batch_size", 16)
    learning_rate: float = training_field("learning_rate", 1e-3, "peak learning rate (linear decay, 5% warm-up)")
    weight_decay: float = weight_decay_field(0.0)
    seed: int = training_field("seed", 0, seeds="the split, the canaries, initialisation and shuffling")
    split_seed: int | None = field_help(None, "seed of the member split and the canaries alone (None: seed); "
                                        "several seeds of one run keep the same members and canaries")
    threads: int | None = training_field("threads")
    device: str = device_field()
    precision: str = precision_field()
    output_dir: str | None = field_help(None, "where to save (None: runs/privacy/<base>-<dataset>-seed<seed>)")
    overwrite: bool = field_help(False, "replace a model already saved in output_dir")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, minimum in (("n_members", 1), ("n_nonmembers", 1), ("min_chars", 0), ("max_length", 8),
                              ("vocab_size", 300), ("n_layer", 1), ("n_embd", 8), ("n_head", 1),
                              ("canaries_per_repetition", 1), ("canary_digits", 1)):
            check_int(owner, name, getattr(self, name), minimum=minimum)
        if self.n_embd % self.n_head:
            raise ConfigError(f"{owner}.n_embd: expected a multiple of n_head={self.n_head}, got {self.n_embd}")
        if not isinstance(self.canary_repetitions, list):
            raise ConfigError(f"{owner}.canary_repetitions: expected a list of integers >= 0")
        for i, count in enumerate(self.canary_repetitions):
            check_int(owner, f"canary_repetitions[{i}]", count, minimum=0)
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
        base = (self.base_model or "gpt2-offline").rsplit("/", 1)[-1]
        return Path("runs") / "privacy" / f"{base}-{self.dataset.replace('/', '-')}-seed{self.seed}"


@dataclass
class CanaryLMRun:
    """Where a canary LM run saved its model, and what it recorded."""

    output_dir: str
    split: MembershipSplit
    canaries: CanarySet | None
    n_train_examples: int
    train_loss: float
    train_seconds: float


# -------------------------------------------------------------------------------------------------- tokenizer/model
def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained on ``texts`` (GPT-2's scheme) that prepends ``<|endoftext|>``, so the
    first word of every text is predicted and scored too; ``<pad>`` is its own token, masked out of the loss."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ConfigError("texts: expected a non-empty list of strings to train the tokenizer on")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS_TOKEN, PAD_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(texts, trainer)
    bos = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS_TOKEN} $A", special_tokens=[(BOS_TOKEN, bos)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=BOS_TOKEN,
                                   pad_token=PAD_TOKEN)


def build_gpt2(config: CanaryLMConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A randomly initialised GPT-2 sized by ``config`` for ``tokenizer``'s vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2_config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.max_length, n_embd=config.n_embd, n_layer=config.n_layer,
        n_head=config.n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(gpt2_config)


def _pretrained(config: CanaryLMConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The Hub (or locally cached) model named by ``base_model``, with a pad token for batching."""
    from hfprune.models import load_model_for_task, load_tokenizer

    assert config.base_model is not None
    tokenizer = load_tokenizer(config.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model_for_task(config.base_model, "causal-lm")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# -------------------------------------------------------------------------------------------------------- corpus
def candidate_rows(texts: list[str], min_chars: int) -> list[int]:
    """Rows eligible as members or non-members: long enough, and the first of any duplicated text (a text in both
    sets would be a member and a non-member at once)."""
    seen: set[str] = set()
    rows = []
    for i, text in enumerate(texts):
        key = text.strip()
        if len(key) >= min_chars and key not in seen:
            seen.add(key)
            rows.append(i)
    return rows


def draw_text_split(config: CanaryLMConfig, exclude: MembershipSplit | None = None) -> MembershipSplit:
    """Members and non-members among the corpus paragraphs, disjoint from ``exclude``'s examples when given (for
    reference and shadow models, which must never see the audited examples)."""
    from hfprune.data import load_dataset
    from hfprune.data.columns import text_columns

    corpus = load_dataset(config.dataset, config.source_split)
    texts: list[str] = list(corpus[text_columns(corpus, pairs=False)[0]])
    rows = candidate_rows(texts, config.min_chars)
    excluded = set() if exclude is None else {*exclude.member_ids, *exclude.nonmember_ids}
    excluded_positions = frozenset(i for i, row in enumerate(rows) if row in excluded)
    seed = config.seed if config.split_seed is None else config.split_seed
    members, nonmembers = draw_split(len(rows), config.n_members, config.n_nonmembers, seed, excluded_positions)
    member_ids, nonmember_ids = [rows[i] for i in members], [rows[i] for i in nonmembers]
    return MembershipSplit(
        dataset=config.dataset, source_split=config.source_split, seed=seed,
        member_ids=member_ids, nonmember_ids=nonmember_ids,
        member_texts=[texts[i] for i in member_ids], nonmember_texts=[texts[i] for i in nonmember_ids],
        max_length=config.max_length, task="causal-lm",
    )


# ------------------------------------------------------------------------------------------------------- training
def train_canary_lm(
    config: CanaryLMConfig,
    exclude: MembershipSplit | None = None,
    tokenizer_dir: str | os.PathLike | None = None,
) -> CanaryLMRun:
    """Train the LM of ``config`` on its members plus canaries, save it with its split and canaries, return the run.

    ``exclude``: draw members and non-members disjoint from this split (to train a reference or shadow model).
    ``tokenizer_dir``: reuse that run's tokenizer instead of training one, so a reference or shadow model scores
    the audited texts over the same tokens as the target. Training happens in a hidden staging folder published
    only once everything is written.
    """
    from hfprune.training import check_output_dir, publish, torch_threads

    target = config.resolved_output_dir()
    check_output_dir(target, config.overwrite)
    split = draw_text_split(config, exclude)
    canaries = None
    corpus = list(split.member_texts)
    if config.canary_repetitions:
        canaries = make_canaries(config.canary_repetitions, config.canaries_per_repetition, config.canary_digits,
                                 config.canary_alphabet, config.canary_template,
                                 seed=config.seed if config.split_seed is None else config.split_seed)
        corpus = insert_canaries(corpus, canaries, seed=config.seed)
    with staged_folder(target, publish(config.overwrite)) as staging:
        with torch_threads(config.threads):
            loss, seconds = _train_and_save(config, split, corpus, staging, tokenizer_dir)
        split.save(staging)
        if canaries is not None:
            canaries.save(staging)
    logger.info("saved the canary LM (%d examples, train loss %.3f, %.0f s) to %s", len(corpus), loss, seconds, target)
    return CanaryLMRun(str(target), split, canaries, len(corpus), loss, seconds)


def _train_and_save(
    config: CanaryLMConfig, split: MembershipSplit, corpus: list[str], staging: Path,
    tokenizer_dir: str | os.PathLike | None,
) -> tuple[float, float]:
    from transformers import DataCollatorForLanguageModeling, Trainer, set_seed

    from hfprune.models import load_tokenizer
    from hfprune.pruning.nonfinite import NonFiniteCallback
    from hfprune.training_args import TrainingSettings, trainer_args

    set_seed(config.seed)
    if config.base_model is not None:
        model, tokenizer = _pretrained(config)
    else:
        tokenizer = (load_tokenizer(tokenizer_dir) if tokenizer_dir is not None
                     else train_tokenizer(split.member_texts, config.vocab_size))  # no canaries: no secret merges
        model = build_gpt2(config, tokenizer)
    train = _tokenized(corpus, tokenizer, config.max_length)
    args = trainer_args(staging, TrainingSettings(config.epochs, config.batch_size, config.learning_rate, config.seed,
                                                  weight_decay=config.weight_decay, warmup=0.05, logging_steps=50,
                                                  device=config.device, precision=config.precision))
    trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=[NonFiniteCallback()])
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(staging))
    config.save_pretrained(staging)
    atomic_write_json(staging / RUN_FILE, {"train_loss": output.training_loss, "train_seconds": seconds,
                                           "n_train_examples": len(corpus)})
    return float(output.training_loss), seconds


def _tokenized(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    import datasets

    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
