"""The training stages of a run, for classifiers and causal LMs: what ``hfprune run``, ``sweep`` and ``prune`` execute.

In a recipe run the dense model is trained on a *recorded* member split
(:func:`~hfprune.audit.privacy.finetune_on_members`, :func:`~hfprune.audit.privacy.train_canary_lm`), and the pruned
student is trained on exactly those members (plus the same canaries for an LM): a membership-inference audit of the
pruned model is then scored against the right ground truth, and no non-member is ever trained on. ``hfprune prune``
(:mod:`hfprune.pipeline.prune_classifier`) is a run with audits off: it calls :func:`distill_pruned` and
:func:`evaluate_model` with its own slice of the training split.

Each task is one entry of ``TASK_SPECS`` (training data, collator, evaluation and the Hub task name); the stages
themselves (:func:`train_dense`, :func:`prune_and_distill`, :func:`distill_pruned`, :func:`evaluate_model`) are
task-agnostic.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hfprune.errors import ConfigError
from hfprune.utils import distributed
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from hfprune.audit.privacy.runs import AuditedRun
    from hfprune.audit.privacy.split import MembershipSplit
    from hfprune.pruning.config import PruningConfig
    from hfprune.recipes.schema import Recipe

logger = get_logger(__name__)


@dataclass
class Quality:
    """A model's task quality on the evaluation split: accuracy for classifiers, perplexity for LMs."""

    metric: str
    value: float
    n_examples: int
    split: str
    higher_is_better: bool
    extra: dict[str, float]
    # per evaluation example, in split order (1/0 correct for a classifier, the text's mean NLL for an LM): the
    # paired dense-vs-pruned tests of the report compare models on them
    per_example: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------- task registry
def split_fields(recipe: Recipe) -> dict[str, Any]:
    """What a member split is drawn from: the same for the dense fine-tune and, without one, the students' draw."""
    d = recipe.data
    return {"dataset": d.dataset, "source_split": d.train_split, "n_members": d.train_samples,
            "n_nonmembers": recipe.audits.privacy.n_nonmembers, "max_length": d.max_length,
            "seed": recipe.training.seed, "split_seed": recipe.training.member_split_seed}


class TaskSpec(ABC):
    """What differs between tasks: how the dense model is trained, the training set, the collator, evaluation."""

    name: ClassVar[str]
    hub_task: ClassVar[str]  # the Hub's task name, for model cards
    quality_metric: ClassVar[str]

    @abstractmethod
    def train_dense(self, recipe: Recipe, target: Path, exclude: MembershipSplit | None = None,
                    tokenizer_dir: Path | None = None) -> None:
        """Train the dense model on a recorded member split, saving model, tokenizer and split in ``target``.
        A shadow model passes ``exclude`` (the audited split, never drawn) and the target's ``tokenizer_dir``."""

    def draw_members(self, recipe: Recipe) -> MembershipSplit:
        """The split the dense fine-tune would draw from ``data.train_split``: with ``training.dense_epochs: 0``
        the pruned student trains on its members (the loaded model is the dense model, trained on none of them)."""
        raise ConfigError(f"training.dense_epochs: 0 is not supported for model.task {self.name!r}; expected > 0")

    @abstractmethod
    def train_dataset(self, run: AuditedRun, recipe: Recipe) -> datasets.Dataset:
        """The tokenised examples the dense model was trained on (the pruned student trains on the same)."""

    @abstractmethod
    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """Batches training examples (dynamic padding; LM labels for causal LMs)."""

    @abstractmethod
    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> Quality:
        """Quality on the evaluation split (never trained on)."""


class ClassificationTask(TaskSpec):
    name = "sequence-classification"
    hub_task = "text-classification"
    quality_metric = "accuracy"

    def train_dense(self, recipe: Recipe, target: Path, exclude: MembershipSplit | None = None,
                    tokenizer_dir: Path | None = None) -> None:
        from hfprune.audit.privacy.classifier import MemberFinetuneConfig, finetune_on_members

        t = recipe.training
        finetune_on_members(MemberFinetuneConfig(
            model=recipe.model.name, **split_fields(recipe), epochs=t.dense_epochs, batch_size=t.batch_size,
            learning_rate=t.learning_rate, weight_decay=t.weight_decay, threads=t.threads, device=t.device,
            precision=t.precision, output_dir=str(target),
        ), exclude=exclude)  # a classifier's tokenizer is its base model's: nothing to share

    def draw_members(self, recipe: Recipe) -> MembershipSplit:
        from hfprune.audit.privacy.classifier import MemberFinetuneConfig, draw_classification_split

        return draw_classification_split(MemberFinetuneConfig(model=recipe.model.name, **split_fields(recipe)))

    def train_dataset(self, run: AuditedRun, recipe: Recipe) -> datasets.Dataset:
        import datasets

        if run.split.member_labels is None:
            raise ConfigError(f"{run.path}: the recorded split has no labels; expected a classification split")
        from hfprune.data.columns import encode

        encoded = encode(run.tokenizer, run.split.member_texts, truncation=True, max_length=recipe.data.max_length)
        return datasets.Dataset.from_dict({**encoded, "labels": run.split.member_labels})

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> Quality:
        from hfprune.audit.privacy.scores import classifier_stats
        from hfprune.data.columns import examples
        from hfprune.training import drop_unlabelled

        split, rows = eval_rows(recipe)
        rows = drop_unlabelled(rows)
        stats = classifier_stats(model, tokenizer, examples(rows), list(rows["label"]), 64, recipe.data.max_length)
        return Quality("accuracy", float(np.mean(stats.correct)), len(rows), split, True,
                       {"mean_loss": float(np.mean(stats.loss))}, np.asarray(stats.correct, dtype=float).tolist())


class CausalLMTask(TaskSpec):
    name = "causal-lm"
    hub_task = "text-generation"
    quality_metric = "perplexity"

    def train_dense(self, recipe: Recipe, target: Path, exclude: MembershipSplit | None = None,
                    tokenizer_dir: Path | None = None) -> None:
        from hfprune.audit.privacy.lm import CanaryLMConfig, train_canary_lm

        t, scratch = recipe.training, recipe.model.scratch
        canaries = recipe.audits.privacy.canaries
        train_canary_lm(CanaryLMConfig(
            base_model=recipe.model.name, **split_fields(recipe), vocab_size=scratch.vocab_size,
            n_layer=scratch.n_layer, n_embd=scratch.n_embd, n_head=scratch.n_head,
            canary_repetitions=list(canaries.repetitions) if recipe.audits.privacy.enabled else [],
            canaries_per_repetition=canaries.per_repetition, canary_digits=canaries.digits, epochs=t.dense_epochs,
            batch_size=t.batch_size, learning_rate=t.learning_rate, weight_decay=t.weight_decay, threads=t.threads,
            device=t.device, precision=t.precision, output_dir=str(target),
        ), exclude=exclude, tokenizer_dir=tokenizer_dir)

    def draw_members(self, recipe: Recipe) -> MembershipSplit:
        from hfprune.audit.privacy.lm import CanaryLMConfig, draw_text_split

        return draw_text_split(CanaryLMConfig(base_model=recipe.model.name, **split_fields(recipe)))

    def train_dataset(self, run: AuditedRun, recipe: Recipe) -> datasets.Dataset:
        import datasets

        from hfprune.audit.privacy.canaries import insert_canaries

        corpus = list(run.split.member_texts)
        if run.canaries is not None:  # the same multiset of examples the dense model saw
            corpus = insert_canaries(corpus, run.canaries, seed=recipe.training.seed)
        encoded = run.tokenizer(corpus, truncation=True, max_length=recipe.data.max_length)
        return datasets.Dataset.from_dict({"input_ids": encoded["input_ids"],
                                           "attention_mask": encoded["attention_mask"]})

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForLanguageModeling

        return DataCollatorForLanguageModeling(tokenizer, mlm=False)

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> Quality:
        from hfprune.audit.privacy.scores import causal_lm_stats
        from hfprune.data.columns import text_columns

        split, rows = eval_rows(recipe)
        texts = [text for text in rows[text_columns(rows, pairs=False)[0]] if text.strip()]
        stats = causal_lm_stats(model, tokenizer, texts, 32, recipe.data.max_length)
        weights = stats.n_tokens if stats.n_tokens is not None else np.ones(len(texts))
        nll = float(np.average(stats.loss, weights=weights))
        return Quality("perplexity", math.exp(nll), len(texts), split, False,
                       {"nll": nll, "next_token_accuracy": float(np.average(stats.correct, weights=weights))},
                       np.asarray(stats.loss, dtype=float).tolist())


TASK_SPECS: dict[str, TaskSpec] = {spec.name: spec for spec in (ClassificationTask(), CausalLMTask())}


def task_spec(task: str) -> TaskSpec:
    if task not in TASK_SPECS:
        raise ConfigError(f"model.task: expected one of {sorted(TASK_SPECS)}, got {task!r}")
    return TASK_SPECS[task]


def eval_split_name(recipe: Recipe) -> str:
    """``data.eval_split``, else validation when the dataset has it, else test (:func:`hfprune.data.eval_split`)."""
    from hfprune.data import eval_split

    return eval_split(recipe.data.dataset, recipe.data.eval_split)


def eval_rows(recipe: Recipe) -> tuple[str, datasets.Dataset]:
    """The evaluation split, capped at ``data.eval_samples`` rows (a seeded shuffle, so the cap is a fair sample)."""
    from hfprune.data import load_dataset

    split = eval_split_name(recipe)
    rows = load_dataset(recipe.data.dataset, split)
    cap = recipe.data.eval_samples
    if cap is not None and cap < len(rows):
        # the split seed, not the training seed: every seed of a run is evaluated on the same sample
        rows = rows.shuffle(seed=recipe.training.member_split_seed).select(range(cap))
    return split, rows


# --------------------------------------------------------------------------------------------------------- stages
def train_dense(recipe: Recipe, target: Path) -> float:
    """Fine-tune (or, for an offline LM, train from scratch) the dense model into ``target``; returns seconds."""
    started = time.perf_counter()
    task_spec(recipe.model.task).train_dense(recipe, target)
    return time.perf_counter() - started


def save_pretrained_dense(recipe: Recipe, target: Path) -> float:
    """``training.dense_epochs: 0``: save the loaded ``model.name`` (and its tokenizer) as the dense model, unchanged,
    so every stage reads a local folder; returns seconds."""
    from hfprune.models import load_model_for_task, load_tokenizer

    started = time.perf_counter()
    model = load_model_for_task(recipe.model.name, task=recipe.model.task)
    model.save_pretrained(target)
    load_tokenizer(recipe.model.name).save_pretrained(target)
    return time.perf_counter() - started


def evaluate_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> Quality:
    """Quality of ``model`` on the recipe's evaluation split, logged."""
    quality = task_spec(recipe.model.task).evaluate(model.eval(), tokenizer, recipe)
    logger.info("%s on %d %s examples: %.4f", quality.metric, quality.n_examples, quality.split, quality.value)
    return quality


def prune_and_distill(
    recipe: Recipe, pruning: PruningConfig, dense: AuditedRun, target: Path, scratch: Path
) -> tuple[PreTrainedModel, float]:
    """Prune a copy of the dense model while distilling from it, on the dense model's own training examples, and
    save it (``save_pruned``, with the recorded split and canaries) into ``target``. ``scratch`` holds the
    Trainer's working files and is removed. Returns the compacted model and the training seconds."""
    from hfprune.pruning import save_pruned

    train = task_spec(recipe.model.task).train_dataset(dense, recipe)
    student, seconds = distill_pruned(recipe, pruning, dense.model, dense.tokenizer, train, scratch)
    if not distributed.is_main():  # the other processes of a launch hold the same student: the main one saves it
        return student, seconds
    save_pruned(student, target, pruning_config=pruning, processing_class=dense.tokenizer)
    dense.split.save(target)  # the pruned model trained on exactly these members
    if dense.canaries is not None:
        dense.canaries.save(target)
    return student, seconds


def distill_pruned(
    recipe: Recipe, pruning: PruningConfig, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
    train: datasets.Dataset, scratch: Path
) -> tuple[PreTrainedModel, float]:
    """Prune a copy of ``teacher`` on the tokenised ``train`` examples with ``MovementPruningCallback``, distilling
    from ``teacher`` when ``distillation.enabled`` (settings from ``recipe.training`` / ``recipe.distillation``).
    ``scratch`` holds the Trainer's working files and is removed. Returns the compacted student (eval mode) and the
    training seconds; nothing is saved."""
    from transformers import Trainer

    from hfprune.distill import DistillationArguments, DistillationTrainer
    from hfprune.pruning import MovementPruningCallback
    from hfprune.training_args import TrainingSettings, trainer_args

    spec = task_spec(recipe.model.task)
    student = copy.deepcopy(teacher).train()
    t, d = recipe.training, recipe.distillation
    settings = TrainingSettings(t.prune_epochs, t.batch_size, t.prune_learning_rate or t.learning_rate, t.seed,
                                weight_decay=t.weight_decay, device=t.device, precision=t.precision)
    trainer_kwargs = dict(model=student, train_dataset=train, processing_class=tokenizer,
                          data_collator=spec.collator(tokenizer), callbacks=[MovementPruningCallback(pruning)])
    if d.enabled:
        args = trainer_args(scratch, settings, args_class=DistillationArguments, distill_alpha=d.alpha,
                            distill_temperature=d.temperature, hidden_distill_weight=d.hidden_weight)
        trainer = DistillationTrainer(teacher_model=copy.deepcopy(teacher), args=args, **trainer_kwargs)
    else:
        trainer = Trainer(args=trainer_args(scratch, settings), **trainer_kwargs)
    logger.info("pruning %s (heads %.0f%%, FFN %.0f%%, weights %.0f%%, %s scores) with distillation %s",
                recipe.model.name or "the dense model", 100 * pruning.head_sparsity, 100 * pruning.ffn_sparsity,
                100 * pruning.weight_sparsity, pruning.scoring, "on" if d.enabled else "off")
    started = time.perf_counter()
    try:
        trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return student.eval(), time.perf_counter() - started
