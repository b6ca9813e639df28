"""Which columns of a classification dataset hold its text, and how one example (a text or a sentence pair) is
tokenised: the single place training, evaluation, attacks and membership audits learn a dataset's layout from.

An example is a string (SST-2's ``sentence``, IMDB's ``text``) or a pair of strings (RTE's ``sentence1`` /
``sentence2``, MNLI's ``premise`` / ``hypothesis``). A pair is encoded as the tokenizer's own pair encoding,
``tokenizer(first, second)`` (``[CLS] a [SEP] b [SEP]`` with token type ids for BERT), exactly as GLUE fine-tuning
scripts do; membership inference scores the classifier on the whole pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hfprune.errors import DataError
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    import datasets
    from transformers import BatchEncoding, PreTrainedTokenizerBase

logger = get_logger(__name__)

# one example: a text, or a (first, second) sentence pair
Example = str | tuple[str, str]

# known pair layouts, each in the order its texts are encoded (GLUE, SuperGLUE-style and NLI datasets on the Hub)
PAIR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sentence1", "sentence2"),  # RTE, MRPC, STS-B, WNLI
    ("premise", "hypothesis"),  # MNLI, SNLI, ANLI, XNLI
    ("question", "sentence"),  # QNLI
    ("question1", "question2"),  # QQP
    ("question", "passage"),  # BoolQ
    ("sentence_a", "sentence_b"),
    ("text", "text_pair"),  # the text-classification pipeline's own names
)
# known single-text columns, used when a dataset has more string columns than one example needs
SINGLE_COLUMNS: tuple[str, ...] = ("text", "sentence", "content", "review", "document")
LAYOUTS_HINT = ("a 'text' or 'sentence' column, or a pair such as "
                + ", ".join("/".join(pair) for pair in PAIR_COLUMNS[:4]))


def string_columns(dataset: datasets.Dataset, label_column: str = "label") -> list[str]:
    """The string-valued columns of ``dataset`` besides ``label_column``, in dataset order."""
    return [name for name, feature in dataset.features.items()
            if name != label_column and getattr(feature, "dtype", None) in ("string", "large_string")]


def text_columns(dataset: datasets.Dataset, label_column: str = "label", *, pairs: bool = True) -> tuple[str, ...]:
    """The column (or pair of columns) an example of ``dataset`` is made of.

    A known pair layout wins (in its encoding order, whatever the file's column order); else one or two string
    columns are the example, in dataset order; else a known single-text column among several. ``pairs=False``
    (causal language modelling) accepts one text column only. Anything else is a one-line DataError naming the
    columns found and the layouts expected.
    """
    found = string_columns(dataset, label_column)
    known_pair = next((pair for pair in PAIR_COLUMNS if set(pair) <= set(found)), None) if pairs else None
    single = next(((name,) for name in SINGLE_COLUMNS if name in found), None)
    if known_pair is not None:
        layout: tuple[str, ...] | None = known_pair
    elif len(found) == 1 or (pairs and len(found) == 2):
        layout = tuple(found)
    else:
        layout = single
    if layout is None:
        expected = "one text column (e.g. 'text'; sentence pairs need a classifier)" if not pairs else LAYOUTS_HINT
        raise DataError(f"dataset columns {dataset.column_names}: expected {expected} besides {label_column!r}, "
                        f"found text columns {found}")
    if len(layout) < len(found):
        logger.info("dataset text: %s (other string columns %s are not model inputs)", list(layout),
                    [c for c in found if c not in layout])
    return layout


def examples(dataset: datasets.Dataset, columns: Sequence[str] | None = None,
             label_column: str = "label") -> list[Example]:
    """Every row of ``dataset`` as an example: its text, or a ``(first, second)`` tuple for a pair layout."""
    columns = tuple(columns) if columns else text_columns(dataset, label_column)
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(f"dataset columns {dataset.column_names}: missing text column(s) {missing}")
    if len(columns) == 1:
        return list(dataset[columns[0]])
    first, second = (dataset[c] for c in columns)
    return list(zip(first, second, strict=True))


def as_examples(values: Sequence[Any], where: str = "texts") -> list[Example]:
    """``values`` checked as examples, all of one kind: strings, or pairs of strings (a JSON list becomes a tuple)."""
    if isinstance(values, str):
        raise DataError(f"{where}: expected a sequence of texts or text pairs, got a single string")
    out: list[Example] = [value if isinstance(value, str) else tuple(value) for value in values]
    kinds = {1 if isinstance(value, str) else len(value) for value in out}
    if not out or not kinds <= {1, 2} or len(kinds) > 1 or not all(
        isinstance(text, str) for value in out for text in ((value,) if isinstance(value, str) else value)
    ):
        raise DataError(f"{where}: expected a non-empty sequence of texts, or of (text, text) pairs, all of one kind")
    return out


def is_pair(example: Example) -> bool:
    return not isinstance(example, str)


def encode(tokenizer: PreTrainedTokenizerBase, batch: Sequence[Example], **kwargs: Any) -> BatchEncoding:
    """``tokenizer`` applied to ``batch``: texts as a list, pairs as the tokenizer's pair encoding
    ``tokenizer(firsts, seconds)``; ``kwargs`` (truncation, max_length, padding...) pass through."""
    batch = as_examples(batch, "batch")
    if is_pair(batch[0]):
        first, second = (list(part) for part in zip(*batch, strict=True))
        return tokenizer(first, second, **kwargs)
    return tokenizer(list(batch), **kwargs)


def _largest(table: datasets.Dataset, column: str) -> Any:
    """The column's largest value, from one arrow array: iterating the rows takes seconds on SST-2's 67k, and every
    run's preflight asks."""
    import pyarrow.compute as pc

    return pc.max(table.with_format("arrow")[:][column]).as_py()


def check_layout(name: str, splits: dict[str, datasets.Dataset | None], *, classifier: bool = True,
                 key: str = "data.dataset", label_column: str = "label") -> tuple[str, ...]:
    """The text columns every split of dataset ``name`` shares (a split given as None is skipped), and for a
    classifier integer class ids in ``label_column``: a run's preflight calls this, so a layout nothing can train on
    fails before any file is written, as a one-line error naming ``key``."""
    layouts = {}
    for split, table in splits.items():
        if table is None:
            continue
        try:
            layouts[split] = text_columns(table, label_column, pairs=classifier)
        except DataError as exc:
            raise DataError(f"{key}: {name} split {split!r}: {exc}") from None
        label = table.features.get(label_column)
        dtype = getattr(label, "dtype", "")
        if classifier and label is not None and not (dtype.startswith("int") or hasattr(label, "names")):
            raise DataError(f"{key}: {name} split {split!r}: column {label_column!r} holds {dtype}; expected integer "
                            "class ids (a regression target such as STS-B's score is not supported)")
        if classifier and label is not None and len(table) and _largest(table, label_column) < 0:
            raise DataError(f"{key}: {name} split {split!r} has no labelled row (label -1 throughout, like GLUE's "
                            "test splits); expected class ids >= 0: choose another split")
    if len(set(layouts.values())) > 1:
        raise DataError(f"{key}: {name} splits have different text columns ({layouts}); expected the same in each")
    return next(iter(layouts.values()), ())
