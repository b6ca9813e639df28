"""Naming the member set of a model trained elsewhere: a dataset split, a file of member texts, or a record written
from the user's own Trainer run.

Membership inference compares the model on examples it trained on (members) with examples it never saw
(non-members) of the same distribution. A model trained outside hfprune usually trained on a whole split, so the
non-members come from the dataset's held-out split: as many as members, drawn by a permutation seeded with ``seed``.
All three routes build the same :class:`MembershipSplit` that hfprune's own runs write (``membership_split.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hfprune.audit.privacy.split import MembershipSplit
from hfprune.data.columns import Example, examples, text_columns
from hfprune.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

# held-out splits tried in order for the non-members (the first that exists and is not the members' split)
HELDOUT_SPLITS = ("validation", "test")
CLASSIFIER = "sequence-classification"


@dataclass(frozen=True)
class MembersSpec:
    """``DATASET[:SPLIT[:N]]``: members are N rows of DATASET[SPLIT] (all rows the held-out split can match when
    N is omitted), drawn by a seeded permutation."""

    dataset: str
    split: str = "train"
    n: int | None = None

    @classmethod
    def parse(cls, text: str) -> MembersSpec:
        parts = text.split(":")
        if not parts[0] or len(parts) > 3 or any(not part for part in parts):
            raise ConfigError(f"--members: expected DATASET[:SPLIT[:N]] (e.g. glue/sst2:train:500), got {text!r}")
        n = None
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise ConfigError(f"--members: N must be an integer >= 1, got {parts[2]!r} in {text!r}")
            n = int(parts[2])
        return cls(parts[0], parts[1] if len(parts) > 1 else "train", n)


def _rows(dataset: Any, task: str, where: str) -> tuple[list[Example], list[int] | None]:
    """Examples (texts, or sentence pairs; for a classifier with labels) of a ``datasets.Dataset`` or a sequence of
    strings."""
    if isinstance(dataset, Sequence) and not isinstance(dataset, str):
        if not all(isinstance(text, str) for text in dataset):
            raise DataError(f"{where}: expected a datasets.Dataset or a list of strings")
        if task == CLASSIFIER:
            raise DataError(f"{where}: a classifier's membership audit needs labels; pass a datasets.Dataset with a "
                            "label column")
        return list(dataset), None
    from hfprune.training import drop_unlabelled

    if task == CLASSIFIER:
        dataset = drop_unlabelled(dataset)
    try:
        texts = examples(dataset) if task == CLASSIFIER else list(dataset[text_columns(dataset, pairs=False)[0]])
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    labels = [int(label) for label in dataset["label"]] if task == CLASSIFIER else None
    return texts, labels


def _draw(n_rows: int, n: int, seed: int) -> list[int]:
    """``n`` row ids of ``range(n_rows)`` by a seeded permutation, sorted (all rows, in order, when n == n_rows)."""
    return sorted(np.random.default_rng(seed).permutation(n_rows)[:n].tolist())


def build_split(
    members: tuple[list[Example], list[int] | None],
    heldout: tuple[list[Example], list[int] | None],
    *,
    n: int | None,
    seed: int,
    dataset: str,
    source_split: str,
    nonmember_split: str,
    task: str,
    max_length: int | None = None,
    field: str = "n",
) -> MembershipSplit:
    """N members of ``members`` and as many non-members of ``heldout`` (N: the most both allow when None);
    ``field`` names N in errors (the argument or flag the caller took it from)."""
    (member_texts, member_labels), (held_texts, held_labels) = members, heldout
    if not member_texts:
        raise DataError(f"members ({dataset} {source_split}): expected at least one member, got none")
    n = min(len(member_texts), len(held_texts)) if n is None else n
    if n > len(member_texts):
        raise ConfigError(f"{field}: {n} members but {dataset} {source_split} has {len(member_texts)} rows")
    if n > len(held_texts):
        raise ConfigError(f"{field}: {n} members but the held-out split {dataset} {nonmember_split} has only "
                          f"{len(held_texts)} rows for as many non-members; choose N <= {len(held_texts)}")
    member_ids = _draw(len(member_texts), n, seed)
    nonmember_ids = _draw(len(held_texts), n, seed + 1)  # another stream: equal sizes must not give equal ids
    return MembershipSplit(
        dataset=dataset, source_split=source_split, seed=seed, member_ids=member_ids, nonmember_ids=nonmember_ids,
        member_texts=[member_texts[i] for i in member_ids], nonmember_texts=[held_texts[i] for i in nonmember_ids],
        member_labels=None if member_labels is None else [member_labels[i] for i in member_ids],
        nonmember_labels=None if held_labels is None else [held_labels[i] for i in nonmember_ids],
        max_length=max_length, task=task, nonmember_split=nonmember_split,
    )


def heldout_rows(
    dataset: str, task: str, member_split: str, nonmember_split: str | None = None
) -> tuple[str, tuple[list[Example], list[int] | None]]:
    """(split name, rows) of the held-out split: ``nonmember_split``, else the first of HELDOUT_SPLITS that loads
    and is not ``member_split``."""
    from hfprune.data import load_dataset

    names = [nonmember_split] if nonmember_split else [s for s in HELDOUT_SPLITS if s != member_split]
    failures = []
    for name in names:
        try:
            return name, _rows(load_dataset(dataset, name), task, f"--members {dataset}:{name}")
        except (DataError, ValueError) as exc:
            failures.append(f"{name}: {exc}")
    raise DataError(f"--nonmember-split: no held-out split of {dataset} for the non-members ({'; '.join(failures)})")


def members_from_dataset(
    spec: MembersSpec, task: str, seed: int, nonmember_split: str | None = None, max_length: int | None = None
) -> MembershipSplit:
    """The split ``--members DATASET[:SPLIT[:N]]`` names."""
    from hfprune.data import load_dataset

    try:
        rows = _rows(load_dataset(spec.dataset, spec.split), task, f"--members {spec.dataset}:{spec.split}")
    except (DataError, ValueError) as exc:
        raise DataError(f"--members: {exc}") from None
    held_name, held = heldout_rows(spec.dataset, task, spec.split, nonmember_split)
    return build_split(rows, held, n=spec.n, seed=seed, dataset=spec.dataset, source_split=spec.split,
                       nonmember_split=held_name, task=task, max_length=max_length, field="--members N")


def read_members_file(path: str | os.PathLike, task: str) -> tuple[list[Example], list[int] | None]:
    """Member texts of FILE: one text per line, or JSON lines with a ``text`` field (and ``label``, which a
    classifier needs; a sentence pair adds ``text_pair``, as the text-classification pipeline names it). Blank lines
    are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--members-file: {path} is not a file")
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise DataError(f"--members-file: {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not lines:
        raise DataError(f"--members-file: {path} is empty; expected one member text per line or JSON lines "
                        'with a "text" field')
    if path.suffix != ".jsonl" and not lines[0].lstrip().startswith("{"):
        if task == CLASSIFIER:
            raise DataError(f"--members-file: {path} has texts without labels; a classifier's membership audit "
                            'needs them: JSON lines {"text": ..., "label": ...}')
        return lines, None
    texts, labels = [], []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"--members-file: {path} line {number} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DataError(f'--members-file: {path} line {number}: expected an object with a "text" string')
        label = row.get("label")
        if task == CLASSIFIER and (isinstance(label, bool) or not isinstance(label, int) or label < 0):
            raise DataError(f'--members-file: {path} line {number}: expected an integer "label" >= 0 (a '
                            "classifier's membership audit scores the loss of the true label)")
        pair = row.get("text_pair")
        if pair is not None and not isinstance(pair, str):
            raise DataError(f'--members-file: {path} line {number}: expected "text_pair" to be a string')
        texts.append(row["text"] if pair is None else (row["text"], pair))
        labels.append(label)
    if len({isinstance(text, str) for text in texts}) > 1:
        raise DataError(f'--members-file: {path}: expected "text_pair" on every line or on none')
    return texts, labels if task == CLASSIFIER else None


def members_from_file(
    path: str | os.PathLike, dataset: str, task: str, seed: int, nonmember_split: str | None = None,
    max_length: int | None = None,
) -> MembershipSplit:
    """Every member of FILE, with as many non-members from ``dataset``'s held-out split."""
    rows = read_members_file(path, task)
    held_name, held = heldout_rows(dataset, task, "train", nonmember_split)
    return build_split(rows, held, n=len(rows[0]), seed=seed, dataset=dataset, source_split=f"file:{Path(path).name}",
                       nonmember_split=held_name, task=task, max_length=max_length, field="--members-file")


def record_membership_split(
    train_dataset: datasets.Dataset | Sequence[str],
    output_dir: str | os.PathLike,
    heldout_dataset: datasets.Dataset | Sequence[str],
    *,
    n: int | None = None,
    seed: int = 0,
    task: str = CLASSIFIER,
    dataset_name: str = "custom",
    max_length: int | None = None,
) -> MembershipSplit:
    """Record the member set of your own Trainer run, for ``hfprune audit OUTPUT_DIR``.

    ``train_dataset`` is what the model trained on (texts, with a ``label`` column for a classifier),
    ``heldout_dataset`` data it never saw, of the same distribution. Writes ``membership_split.json`` into
    ``output_dir`` (the format hfprune's own runs write): ``n`` members (all when None, at most as many as the
    held-out rows) and as many non-members, both drawn by a permutation seeded with ``seed``. Returns the split.
    """
    if not Path(output_dir).is_dir():
        raise ConfigError(f"output_dir: {output_dir} is not a directory (save the model first)")
    split = build_split(_rows(train_dataset, task, "train_dataset"), _rows(heldout_dataset, task, "heldout_dataset"),
                        n=n, seed=seed, dataset=dataset_name, source_split="train", nonmember_split="heldout",
                        task=task, max_length=max_length)
    split.save(output_dir)
    return split
