"""Parsers for the local copies of public datasets: each turns files into Hub-shaped columns (a dict of lists).

Every reader takes the list of files its split declares (paths already resolved) and returns columns named as on
the Hub. A malformed row is a DataError naming the file, the line and the expected layout.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hfprune.errors import DataError

Columns = dict[str, list]
Reader = Callable[[Sequence[Path]], Columns]

SST2_LABELS = ("negative", "positive")
IMDB_LABELS = ("neg", "pos")
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
RTE_LABELS = ("entailment", "not_entailment")
ROTTEN_TOMATOES_LABELS = ("neg", "pos")

# Hub sizes of rotten_tomatoes (train / validation / test); the local copy is split with this seed, class-balanced
ROTTEN_TOMATOES_SIZES = {"train": 8530, "validation": 1066, "test": 1066}
ROTTEN_TOMATOES_SEED = 20240601

# contiguous fractions for plain-text corpora that have no official split
TEXT_SPLIT_FRACTIONS = {"train": 0.90, "validation": 0.05, "test": 0.05}


def _tsv_rows(path: Path, n_fields: int, header: Sequence[str] | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of a tab-separated file with unquoted fields, checking header and width."""
    with open(path, encoding="utf-8", newline="") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if lineno == 1 and header is not None:
                if fields != list(header):
                    raise DataError(f"{path}: expected header {list(header)}, got {fields}")
                continue
            if len(fields) != n_fields:
                raise DataError(f"{path}:{lineno}: expected {n_fields} tab-separated fields, got {len(fields)}")
            yield lineno, fields


def _label_id(path: Path, lineno: int, value: str, names: Sequence[str]) -> int:
    """Map a label written as an id ("1") or a class name ("positive") to its id."""
    if value in names:
        return names.index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(names):
        return int(value)
    raise DataError(f"{path}:{lineno}: label {value!r} is not one of {list(names)} or an id below {len(names)}")


def read_sst2_glue(paths: Sequence[Path]) -> Columns:
    """GLUE SST-2 train/dev TSV (``sentence<TAB>label``). The sentence keeps GLUE's trailing space, as on the Hub."""
    (path,) = paths
    columns: Columns = {"sentence": [], "label": [], "idx": []}
    for lineno, (sentence, label) in _tsv_rows(path, 2, header=("sentence", "label")):
        columns["sentence"].append(sentence)
        columns["label"].append(_label_id(path, lineno, label, SST2_LABELS))
        columns["idx"].append(len(columns["idx"]))
    return columns


def read_sst2_labelled_test(paths: Sequence[Path]) -> Columns:
    """The labelled SST-2 test sentences (``label<TAB>content``), in the same columns as the GLUE splits."""
    (path,) = paths
    columns: Columns = {"sentence": [], "label": [], "idx": []}
    for lineno, (label, content) in _tsv_rows(path, 2, header=("label", "content")):
        columns["sentence"].append(content)
        columns["label"].append(_label_id(path, lineno, label, SST2_LABELS))
        columns["idx"].append(len(columns["idx"]))
    return columns


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped for ``.gz``: a truncated or corrupt archive is a DataError naming the file."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # EOFError: cut short; BadGzipFile (an OSError): not gzip
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc or type(exc).__name__}); expected a complete "
                        ".gz archive (download or copy it again)") from None


def decode_utf8(path: Path, raw: bytes) -> str:
    """``raw`` decoded as UTF-8, else a DataError naming the file, the line and the offending byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "expected UTF-8 text") from None


def read_text(path: Path) -> str:
    """A (possibly gzipped) UTF-8 text file, with the errors of ``read_bytes`` and ``decode_utf8``."""
    return decode_utf8(path, read_bytes(path))


def json_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of a JSON-lines file, blank lines left out. Split at "\n" only: ``str.splitlines`` also
    cuts at U+2028 and U+0085, which JSON strings may hold unescaped."""
    return [(n, line) for n, line in enumerate(read_text(path).split("\n"), start=1) if line.strip()]


def check_text(path: Path, lineno: int, column: str, value: object) -> str:
    """``value`` if it is a string, else a DataError naming the file, line and column."""
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: {column!r} is {type(value).__name__} {value!r}"[:200]
                        + "; expected a string")
    return value


def read_imdb_jsonl(paths: Sequence[Path]) -> Columns:
    """aclImdb as gzipped JSON lines (``text``, ``label`` 0 neg / 1 pos); other fields are dropped like on the Hub."""
    (path,) = paths
    columns: Columns = {"text": [], "label": []}
    for lineno, line in json_lines(path):
        try:
            row = json.loads(line)
            text, label = row["text"], int(row["label"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{lineno}: expected a JSON object with 'text' and 'label' ({exc})") from None
        columns["text"].append(check_text(path, lineno, "text", text))
        columns["label"].append(_label_id(path, lineno, str(label), IMDB_LABELS))
    return columns


def read_ag_news_csv(paths: Sequence[Path]) -> Columns:
    """AG News CSV (class 1-4, title, description): text is ``title + " " + description`` and label = class - 1,
    exactly as the Hub's ag_news builds them."""
    (path,) = paths
    columns: Columns = {"text": [], "label": []}
    with open(path, encoding="utf-8", newline="") as handle:
        for lineno, fields in enumerate(csv.reader(handle), start=1):
            if len(fields) != 3 or not fields[0].isdigit():
                raise DataError(f"{path}:{lineno}: expected 3 CSV fields (class 1-4, title, description)")
            columns["text"].append(f"{fields[1]} {fields[2]}")
            columns["label"].append(_label_id(path, lineno, str(int(fields[0]) - 1), AG_NEWS_LABELS))
    return columns


def read_ag_news_subset(paths: Sequence[Path]) -> Columns:
    """The 10,001-row AG News train sample (``description<TAB>class name``); it has no titles."""
    (path,) = paths
    columns: Columns = {"text": [], "label": []}
    for lineno, (text, name) in _tsv_rows(path, 2, header=None):
        columns["text"].append(text)
        columns["label"].append(_label_id(path, lineno, name, AG_NEWS_LABELS))
    return columns


def read_rte(paths: Sequence[Path]) -> Columns:
    """GLUE RTE TSV (``index, sentence1, sentence2[, label]``); the unlabelled test split gets label -1 like the Hub."""
    (path,) = paths
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    labelled = "label" in header
    columns: Columns = {"sentence1": [], "sentence2": [], "label": [], "idx": []}
    for lineno, fields in _tsv_rows(path, len(header), header=header):
        columns["idx"].append(int(fields[0]))
        columns["sentence1"].append(fields[1])
        columns["sentence2"].append(fields[2])
        columns["label"].append(_label_id(path, lineno, fields[3], RTE_LABELS) if labelled else -1)
    return columns


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected UTF-8 text ({exc})") from None


def read_rotten_tomatoes(paths: Sequence[Path], split: str) -> Columns:
    """Pang & Lee sentence polarity (``rt-polarity.pos``, ``rt-polarity.neg``) split into the Hub's sizes.

    Each class is shuffled with a fixed seed and cut into equal halves of 8,530 / 1,066 / 1,066, then the split's
    rows are shuffled together: deterministic, class-balanced, but not the Hub's exact assignment of sentences.
    """
    pos_path, neg_path = paths
    rng = random.Random(ROTTEN_TOMATOES_SEED)
    rows: list[tuple[str, int]] = []
    for path, label in ((neg_path, 0), (pos_path, 1)):
        lines = [line.strip() for line in _read_lines(path) if line.strip()]
        expected = sum(ROTTEN_TOMATOES_SIZES.values()) // 2
        if len(lines) != expected:
            raise DataError(f"{path}: expected {expected} non-empty lines, got {len(lines)}")
        rng.shuffle(lines)
        start = 0
        for name, size in ROTTEN_TOMATOES_SIZES.items():
            if name == split:
                rows.extend((line, label) for line in lines[start : start + size // 2])
            start += size // 2
    rng.shuffle(rows)
    return {"text": [text for text, _ in rows], "label": [label for _, label in rows]}


def contiguous_slice(n_items: int, split: str, fractions: dict[str, float] = TEXT_SPLIT_FRACTIONS) -> slice:
    """The contiguous block of ``n_items`` that ``split`` covers (train first, then validation, then test)."""
    bounds: dict[str, slice] = {}
    start = 0
    names = list(fractions)
    for position, name in enumerate(names):
        stop = n_items if position == len(names) - 1 else start + round(n_items * fractions[name])
        bounds[name] = slice(start, stop)
        start = stop
    return bounds[split]


def paragraphs(lines: Sequence[str]) -> list[str]:
    """Blocks of consecutive non-blank lines, joined with newlines (a novel's paragraph, a play's speech)."""
    blocks: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks


def read_paragraph_corpus(paths: Sequence[Path], split: str) -> Columns:
    """Plain-text corpus, one row per paragraph; each file is cut contiguously 90/5/5 into train/validation/test,
    so every split samples every file (every novel) and no paragraph is shared between splits."""
    text: list[str] = []
    for path in paths:
        blocks = paragraphs(_read_lines(path))
        text.extend(blocks[contiguous_slice(len(blocks), split)])
    return {"text": text}


def read_wikitext_lines(paths: Sequence[Path]) -> Columns:
    """WikiText file, one row per line as the Hub builds it: blank lines become "", others keep their newline."""
    (path,) = paths
    with open(path, encoding="utf-8") as handle:
        return {"text": [line if line.strip() else "" for line in handle]}
