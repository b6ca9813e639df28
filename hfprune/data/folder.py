"""A local folder of JSON-lines or CSV files as a classification (or text) dataset, checked like the built-in copies.

One file per split, named after it: ``train.jsonl``, ``validation.csv``, ``test.jsonl.gz`` (``dev`` and ``valid``
mean validation). Every row is read and checked when the dataset loads, so a run's preflight fails before anything
is written, with ``file:line``: the text columns hold strings, the ``label`` column holds integer class ids, every
class id from 0 to the largest one occurs in the train split (a stray ``5`` in a binary dataset is caught), every file
is UTF-8 (and a complete gzip archive), and no split is empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.data.readers import check_text, json_lines, read_text
from hfprune.errors import DataError

if TYPE_CHECKING:
    import datasets

LABEL = "label"
SPLIT_NAMES = {"train": "train", "validation": "validation", "dev": "validation", "valid": "validation",
               "test": "test"}
Rows = Iterator[tuple[int, dict[str, Any]]]


def _jsonl_rows(path: Path) -> Rows:
    for lineno, line in json_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc}); expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def _csv_rows(path: Path) -> Rows:
    """CSV with a header row; a ``label`` written as digits becomes an int (anything else is left for the check)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for row in reader:
        if None in row or None in row.values():
            raise DataError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames or [])} comma-separated "
                            f"fields {reader.fieldnames}, got a different count")
        value = row.get(LABEL)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            row[LABEL] = int(value)
        yield reader.line_num, row


# file suffix (before an optional .gz) -> row reader
FORMATS: dict[str, Callable[[Path], Rows]] = {".jsonl": _jsonl_rows, ".json": _jsonl_rows, ".csv": _csv_rows}


def is_data_folder(name: str) -> bool:
    """Whether ``name`` is a local folder (rather than a dataset name)."""
    return Path(name).expanduser().is_dir()


def split_files(folder: Path) -> dict[str, Path]:
    """{split: file} of the folder; a file whose name is no split, or two files for one split, is an error."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        name = path.name.removesuffix(".gz")
        stem, suffix = name.split(".", 1)[0], "." + name.split(".", 1)[-1] if "." in name else ""
        if suffix not in FORMATS or stem.lower() not in SPLIT_NAMES:
            continue
        split = SPLIT_NAMES[stem.lower()]
        if split in found:
            raise DataError(f"{folder}: two files for the {split} split ({found[split].name}, {path.name}); expected "
                            "one")
        found[split] = path
    if not found:
        raise DataError(f"{folder}: no dataset files; expected files named after their split (train, validation "
                        f"or test) ending in {sorted(FORMATS)} (optionally .gz)")
    return found


def _read_split(path: Path) -> tuple[dict[str, list[Any]], list[int]]:
    """Columns of one file, every row checked; and the line number of each row (for label errors).

    A column with a string anywhere is a text column, and must hold a string in every row (a null text is an
    error, not an empty example); other columns besides ``label`` must hold integers (an ``idx``)."""
    suffix = "." + path.name.removesuffix(".gz").split(".", 1)[1]
    rows = list(FORMATS[suffix](path))
    if not rows:
        raise DataError(f"{path}: no examples in this split; expected at least one row")
    first_line, first = rows[0]
    for lineno, row in rows:
        if set(row) != set(first):
            raise DataError(f"{path}:{lineno}: columns {sorted(row)}; expected {sorted(first)} like line "
                            f"{first_line}")
    text = [key for key in first if key != LABEL and any(isinstance(row[key], str) for _, row in rows)]
    if not text:
        raise DataError(f"{path}:{first_line}: no text column (columns {sorted(first)}); expected a column of "
                        f"strings such as 'text', and {LABEL!r}")
    for lineno, row in rows:
        for key, value in row.items():
            if key in text:
                check_text(path, lineno, key, value)
            elif isinstance(value, bool) or not isinstance(value, int) or (key == LABEL and value < 0):
                expected = "an integer class id >= 0" if key == LABEL else "an integer (or a string in every row)"
                raise DataError(f"{path}:{lineno}: {key!r} is {type(value).__name__} {value!r}"[:200]
                                + f"; expected {expected}")
    return {key: [row[key] for _, row in rows] for key in first}, [lineno for lineno, _ in rows]


def load_folder(folder: str, split: str | None = None) -> datasets.DatasetDict | datasets.Dataset:
    """The folder's splits (or ``split``), all of them read and checked (see the module docstring)."""
    import datasets

    root = Path(folder).expanduser()
    files = split_files(root)
    if split is not None and split not in files:
        names = ", ".join(p.name for p in files.values())
        raise DataError(f"{root}: no {split} split; expected a file named after it, found {sorted(files)} ({names})")
    read = {name: _read_split(path) for name, path in files.items()}
    kinds = {name: {key: type(values[0]).__name__ for key, values in cols.items()} for name, (cols, _) in read.items()}
    first = next(iter(read))
    for name, kind in kinds.items():
        if kind != kinds[first]:
            raise DataError(f"{files[name]}: columns {kind}; expected {kinds[first]} like {files[first].name}")
    sample = read[first][0]
    features = {key: datasets.Value("string" if isinstance(sample[key][0], str) else "int64")
                for key in sample if key != LABEL}
    if LABEL in sample:
        features[LABEL] = datasets.ClassLabel(names=_class_names(files, read))
    built = {name: datasets.Dataset.from_dict(cols, features=datasets.Features(features))
             for name, (cols, _) in read.items()}
    return built[split] if split is not None else datasets.DatasetDict(built)


def _class_names(files: dict[str, Path], read: dict[str, tuple[dict[str, list[Any]], list[int]]]) -> list[str]:
    """Class ids 0..k-1, k the number of distinct labels of the train split (the one the classes are learnt from):
    a label at or beyond k, in any split, is out of range and named with its file and line (``5`` in a binary
    dataset whose train split uses 0, 1 and 5, or a test label the train split never uses)."""
    reference = "train" if "train" in read else next(iter(read))
    n_classes = len(set(read[reference][0][LABEL]))
    for name in [reference, *(n for n in read if n != reference)]:
        cols, lines = read[name]
        for label, lineno in zip(cols[LABEL], lines, strict=True):
            if label >= n_classes:
                raise DataError(f"{files[name]}:{lineno}: label {label} is out of range; expected a class id below "
                                f"{n_classes} ({files[reference].name} has {n_classes} distinct labels, so the ids "
                                f"are 0..{n_classes - 1}, each used)")
    return [str(i) for i in range(n_classes)]
