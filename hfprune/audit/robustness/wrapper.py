"""Querying a classifier with raw texts: batched, in eval mode, without gradients, returning class probabilities.

``ClassifierPredictor`` needs no TextAttack; ``textattack_wrapper`` puts it behind TextAttack's
``HuggingFaceModelWrapper`` interface. Compacted hfprune models are ordinary ``nn.Module``s with fewer heads and
neurons, so both work for dense, masked and compacted models alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from hfprune.errors import ConfigError
from hfprune.utils.config import check_int

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# one input: a text, or a tuple of texts for pair tasks (premise, hypothesis), as TextAttack's tokenizer_input
TextInput = str | tuple[str, ...]


def _as_tuples(inputs: Sequence[TextInput]) -> list[tuple[str, ...]]:
    """Every input as a tuple of texts, all of the same length (1 for single texts, 2 for pairs)."""
    if isinstance(inputs, str):
        raise ConfigError("inputs: expected a sequence of texts, got a single string")
    rows = [(item,) if isinstance(item, str) else tuple(item) for item in inputs]
    widths = {len(row) for row in rows}
    if len(widths) > 1 or not widths <= {1, 2} or not all(isinstance(t, str) for row in rows for t in row):
        raise ConfigError("inputs: expected texts, or pairs of texts, all of the same kind")
    return rows


class ClassifierPredictor:
    """``tokenizer`` + sequence classifier -> class probabilities for lists of texts, without gradients.

    Texts are tokenised with dynamic padding (to the longest text of each batch; TextAttack's own wrapper pads every
    query to 512 tokens, paying for 512 tokens per short SST-2 sentence) and truncated to ``max_length`` tokens.
    The model is put in eval mode for each call and restored afterwards, so dropout never makes two queries of one
    text disagree.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 32,
        max_length: int = 128,
    ) -> None:
        check_int("ClassifierPredictor", "batch_size", batch_size, minimum=1)
        check_int("ClassifierPredictor", "max_length", max_length, minimum=1)
        if getattr(tokenizer, "pad_token", "") is None:
            raise ConfigError("tokenizer: has no padding token, which batched queries need; set one first, e.g. "
                              "tokenizer.pad_token = tokenizer.eos_token (and model.config.pad_token_id to match)")
        from hfprune.models import max_positions

        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        limit = max_positions(getattr(model, "config", None))
        self.max_length = max_length if limit is None else min(max_length, limit)  # longer texts are truncated
        self.num_calls = 0  # forward passes so far: tests and benchmarks read it

    @property
    def num_labels(self) -> int | None:
        """The classifier's number of classes, from its config (None for a model without one)."""
        config = getattr(self.model, "config", None)
        return getattr(config, "num_labels", None)

    def logits(self, inputs: Sequence[TextInput], progress: bool = False) -> np.ndarray:
        """(len(inputs), n_classes) float64 logits, computed ``batch_size`` texts at a time."""
        import torch

        rows = _as_tuples(inputs)
        if not rows:
            return np.zeros((0, self.num_labels or 0))
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        starts = range(0, len(rows), self.batch_size)
        chunks = []
        try:
            with torch.inference_mode():  # no_grad, and no autograd bookkeeping on the outputs either
                for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress, leave=False):
                    chunks.append(self._forward(rows[start:start + self.batch_size], device))
        finally:
            self.model.train(was_training)
        return np.concatenate(chunks, axis=0)

    def _forward(self, rows: list[tuple[str, ...]], device: torch.device) -> np.ndarray:
        import torch

        columns = list(zip(*rows, strict=True))
        encoded = self.tokenizer(*(list(c) for c in columns), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        outputs = self.model(**{k: v.to(device) for k, v in encoded.items()})
        logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
        self.num_calls += 1
        return logits.detach().to(dtype=torch.float64).cpu().numpy()

    def predict_proba(self, inputs: Sequence[TextInput], progress: bool = False) -> np.ndarray:
        """(len(inputs), n_classes) probabilities (softmax of the logits, rows summing to 1)."""
        from hfprune.audit.metrics import softmax

        logits = self.logits(inputs, progress=progress)
        return softmax(logits) if logits.size else logits

    def predict(self, inputs: Sequence[TextInput], progress: bool = False) -> np.ndarray:
        """Predicted class ids (argmax), one per input."""
        return self.logits(inputs, progress=progress).argmax(axis=1)

    __call__ = predict_proba


@functools.cache
def _wrapper_class() -> type:
    """A ``HuggingFaceModelWrapper`` subclass answering through a ClassifierPredictor (built once textattack is
    imported: importing it takes seconds and hundreds of MB)."""
    from hfprune.compat.textattack import import_textattack

    textattack = import_textattack()

    class HfpruneModelWrapper(textattack.models.wrappers.HuggingFaceModelWrapper):
        """TextAttack's wrapper with batched, dynamically padded queries returning probabilities.

        The parent's constructor is skipped on purpose: it asserts ``transformers`` types, and an audit must also
        accept masked or compacted models and custom ``nn.Module`` classifiers.
        """

        def __init__(self, predictor: ClassifierPredictor) -> None:
            self.predictor = predictor
            self.model = predictor.model
            self.tokenizer = predictor.tokenizer
            self.max_length = None  # only used by the parent for generation models

        def __call__(self, text_input_list: list[TextInput]) -> np.ndarray:
            return self.predictor.predict_proba(text_input_list)

    return HfpruneModelWrapper


def textattack_wrapper(predictor: ClassifierPredictor) -> Any:
    """``predictor`` as a ``textattack.models.wrappers.HuggingFaceModelWrapper`` that attacks can query."""
    if not isinstance(predictor, ClassifierPredictor):
        raise ConfigError(f"predictor: expected a ClassifierPredictor, got {type(predictor).__name__}")
    return _wrapper_class()(predictor)
