"""Per-example statistics a membership attack reads: loss, confidence, entropy, the LiRA statistic, correctness.

Computed once per model (batched, ``no_grad``, eval mode, padding masked) so every attack, the generalisation gap
and the report see the same numbers. :meth:`ExampleStats.from_logits` builds them from constructed logits, which is
how the probes are tested without a model.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from hfprune.audit import metrics
from hfprune.data.columns import Example, as_examples, encode
from hfprune.errors import ConfigError, DataError
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)

LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class ExampleStats:
    """Per-example statistics of one model on the audited examples (members first, as in the split).

    Classifiers: ``loss`` is the cross-entropy of the true label, ``confidence`` its probability, ``entropy`` the
    predictive entropy (nats), ``correct`` 0/1. Causal LMs: the same per token, averaged over each sequence
    (``loss`` is the log-perplexity in nats, ``correct`` the next-token accuracy), with ``n_tokens`` scored tokens
    per sequence. ``lira`` is the statistic LiRA fits Gaussians to (Carlini et al. 2022): the logit-scaled
    confidence log(p / (1 - p)) for classifiers, the mean token log-likelihood for LMs. ``zlib_bits`` is the
    zlib-compressed length of the text in bits (Carlini et al. 2021), filled when the texts are known.
    """

    loss: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    correct: np.ndarray
    lira: np.ndarray
    n_tokens: np.ndarray | None = None
    zlib_bits: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = None
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            array = metrics._as_vector(f"ExampleStats.{item.name}", value)
            if n is not None and array.size != n:
                raise ConfigError(f"ExampleStats.{item.name}: expected {n} values (as loss), got {array.size}")
            n = array.size
            object.__setattr__(self, item.name, array)

    def __len__(self) -> int:
        return int(self.loss.size)

    @classmethod
    def from_logits(cls, logits: Any, labels: Any) -> ExampleStats:
        """Statistics of a classifier from its (n, n_classes) logits and the true labels, in numpy."""
        matrix = metrics._as_matrix("logits", logits)
        target = np.asarray(labels)
        if target.shape != (matrix.shape[0],) or not np.issubdtype(target.dtype, np.integer):
            raise ConfigError(f"labels: expected {matrix.shape[0]} integer labels, got shape {target.shape}")
        if target.min() < 0 or target.max() >= matrix.shape[1]:
            raise ConfigError(f"labels: expected values in [0, {matrix.shape[1]}), "
                              f"got [{target.min()}, {target.max()}]")
        log_probs = matrix - _logsumexp(matrix)[:, None]
        rows = np.arange(matrix.shape[0])
        true_log_prob = log_probs[rows, target]
        others = log_probs.copy()
        others[rows, target] = -np.inf
        return cls(
            loss=-true_log_prob,
            confidence=np.exp(true_log_prob),
            entropy=-(np.exp(log_probs) * log_probs).sum(axis=1),
            correct=(matrix.argmax(axis=1) == target).astype(float),
            lira=true_log_prob - _logsumexp(others),  # log p - log(1 - p), stable for p near 1
        )

    def with_texts(self, texts: Sequence[str]) -> ExampleStats:
        """A copy with ``zlib_bits`` filled from ``texts`` (aligned with the examples)."""
        if len(texts) != len(self):
            raise ConfigError(f"texts: expected {len(self)} texts (one per example), got {len(texts)}")
        bits = np.array([zlib_entropy(text) for text in texts], dtype=float)
        return ExampleStats(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "zlib_bits": bits})

    def subset(self, rows: np.ndarray) -> ExampleStats:
        """The statistics of the selected examples (a boolean mask or indices)."""
        return ExampleStats(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                               for f in fields(self)})


def _logsumexp(matrix: np.ndarray) -> np.ndarray:
    top = matrix.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top + np.log(np.exp(matrix - top[:, None]).sum(axis=1))


def zlib_entropy(text: str) -> float:
    """Bits of the zlib-compressed UTF-8 text: Carlini et al. 2021's cheap proxy for how much information it has."""
    return 8.0 * len(zlib.compress(text.encode("utf-8")))


# ----------------------------------------------------------------------------------------------- models: batching
def _batches(n: int, batch_size: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, total=len(starts), leave=False, disable=len(starts) < 4)


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[Example], max_length: int | None) -> Any:
    """A right-padded batch (left padding would shift GPT-2's absolute positions), truncated when asked; pairs as
    the tokenizer's pair encoding."""
    return encode(tokenizer, texts, padding=True, padding_side="right", return_tensors="pt",
                  truncation=max_length is not None, max_length=max_length)


def _input_limit(model: PreTrainedModel, max_length: int | None) -> int | None:
    """``max_length`` capped at the longest input the model accepts: a longer text is truncated, never a crash."""
    from hfprune.models import max_positions

    limit = max_positions(getattr(model, "config", None))
    if limit is None:
        return max_length
    return limit if max_length is None else min(max_length, limit)


def _device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


def classifier_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[Example],
    labels: Sequence[int],
    batch_size: int = 64,
    max_length: int | None = 128,
) -> ExampleStats:
    """Per-example statistics of a sequence classifier on ``texts`` with true ``labels``.

    The model is put in eval mode (no dropout: the same input always scores the same) and restored after.
    """
    logits = classifier_logits(model, tokenizer, texts, batch_size, max_length)
    return ExampleStats.from_logits(logits, np.asarray(labels, dtype=np.int64))


def classifier_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[Example],
    batch_size: int = 64,
    max_length: int | None = 128,
) -> np.ndarray:
    """(n, n_classes) float64 logits of a sequence classifier, batched, under ``no_grad``, in eval mode."""
    import torch

    _check_texts(texts)
    max_length = _input_limit(model, max_length)
    chunks: list[np.ndarray] = []
    was_training, device = model.training, _device(model)
    model.eval()
    try:
        with torch.no_grad():
            for start in _batches(len(texts), batch_size, "classifier scores"):
                batch = _encode(tokenizer, texts[start:start + batch_size], max_length)
                output = model(**{k: v.to(device) for k, v in batch.items()})
                chunks.append(output.logits.double().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks)


def _check_texts(texts: Sequence[Example]) -> None:
    try:
        as_examples(texts)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class TokenScores:
    """Per-sequence sums over the scored tokens of a causal LM (every token after the first)."""

    nll: np.ndarray  # nats
    prob: np.ndarray
    entropy: np.ndarray
    correct: np.ndarray
    n_tokens: np.ndarray


def causal_lm_token_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int | None = 128,
    desc: str = "sequence scores",
) -> TokenScores:
    """Sum over each sequence's predicted tokens of NLL, true-token probability, entropy and argmax hits.

    Token t is predicted from tokens < t; padding (``attention_mask == 0``) is excluded, so the sums do not depend
    on what else shares the batch. The tokenizer decides whether a BOS token is prepended (the offline GPT-2 does,
    so the first word is scored too).
    """
    import torch

    _check_texts(texts)
    max_length = _input_limit(model, max_length)
    parts: list[tuple[np.ndarray, ...]] = []
    was_training, device = model.training, _device(model)
    model.eval()
    try:
        with torch.no_grad():
            for start in _batches(len(texts), batch_size, desc):
                batch = _encode(tokenizer, texts[start:start + batch_size], max_length)
                batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                parts.append(_token_sums(model(**batch).logits, batch["input_ids"], batch["attention_mask"]))
    finally:
        model.train(was_training)
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    if np.any(columns[4] == 0):
        raise ConfigError("texts: every text must tokenise to at least two tokens (nothing to predict otherwise)")
    return TokenScores(*columns)


def _token_sums(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Per-row sums of (nll, p(true), entropy, hit, count) over positions 1.. whose token is not padding."""
    log_probs = logits[:, :-1].double().log_softmax(-1)
    target = input_ids[:, 1:]
    mask = (attention_mask[:, 1:] * attention_mask[:, :-1]).double()
    true_lp = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    hits = (log_probs.argmax(-1) == target).double()
    sums = [(-true_lp * mask).sum(1), (true_lp.exp() * mask).sum(1), (entropy * mask).sum(1), (hits * mask).sum(1),
            mask.sum(1)]
    return tuple(s.cpu().numpy() for s in sums)


def causal_lm_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 32,
    max_length: int | None = 128,
) -> ExampleStats:
    """Per-sequence statistics of a causal LM: token means of NLL, true-token probability, entropy and accuracy.

    ``loss`` is the log-perplexity (nats per token), the score of the loss and perplexity-ranking attacks;
    ``zlib_bits`` is filled for the zlib-ratio attack from the same truncated text the perplexity scores (a ratio of
    a truncated perplexity to a full-text zlib length would vary with the text's length, not its memorisation).
    """
    sums = causal_lm_token_scores(model, tokenizer, texts, batch_size, max_length)
    count = sums.n_tokens
    return ExampleStats(
        loss=sums.nll / count,
        confidence=sums.prob / count,
        entropy=sums.entropy / count,
        correct=sums.correct / count,
        lira=-sums.nll / count,
        n_tokens=count,
    ).with_texts(scored_texts(tokenizer, texts, _input_limit(model, max_length)))


def scored_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int | None) -> list[str]:
    """The part of each text a model scores: a text longer than ``max_length`` tokens is cut to those tokens
    (decoded without special tokens); a shorter one is kept as written, so decoding never alters it."""
    if max_length is None:
        return list(texts)
    rows = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    full = tokenizer(list(texts))["input_ids"]
    return [text if len(whole) <= max_length else tokenizer.decode(row, skip_special_tokens=True)
            for text, row, whole in zip(texts, rows, full, strict=True)]


def sequence_log_perplexity_bits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 256,
    max_length: int | None = None,
    desc: str = "log-perplexities",
) -> np.ndarray:
    """-log2 Pr(text) under the model, summed over its tokens: the log-perplexity of Carlini et al. 2019.

    A sum, not a mean: candidates whose digits tokenise into different numbers of tokens stay comparable.
    """
    sums = causal_lm_token_scores(model, tokenizer, texts, batch_size, max_length, desc=desc)
    return sums.nll / LN2
