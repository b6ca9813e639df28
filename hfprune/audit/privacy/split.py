"""``MembershipSplit``: which examples a model was trained on (members) and which were held out (non-members).

A membership-inference audit is only meaningful on exactly the split the training run used, so the run writes it
as JSON next to the model (``membership_split.json``) and the audit reads it back. The examples themselves are
stored with their row ids in the source dataset, so an audit needs neither the dataset loader nor the same seed;
a SHA-256 fingerprint of the texts catches a file edited by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from hfprune.data.columns import Example, as_examples, is_pair
from hfprune.errors import ConfigError
from hfprune.utils.config import VERSION_KEY, reject_unknown_keys
from hfprune.utils.io import atomic_write_json

SPLIT_FILE = "membership_split.json"


def fingerprint(texts: list[Example], labels: list[int] | None) -> str:
    """SHA-256 over the examples (and labels), in order: two splits with the same fingerprint hold the same examples.
    A pair is hashed as its two texts behind a record separator (a single text hashes as it always did)."""
    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        digest.update(("\x1e" + "\x1f".join(text) if is_pair(text) else text).encode("utf-8"))
        digest.update(b"\x00" if labels is None else f"\x00{labels[i]}\x00".encode())
    return digest.hexdigest()


@dataclass
class MembershipSplit:
    """Members (trained on) and non-members (held out, same distribution) of one training run.

    ``*_ids`` are row indices in ``dataset[source_split]`` (non-members: in ``dataset[nonmember_split]`` when that
    is set, for a model trained on a whole split and audited against the held-out one); ``*_texts`` the examples;
    ``*_labels`` their classes (None for language modelling). An example is a text, or a ``(first, second)`` pair for
    sentence-pair tasks (a JSON list of two strings in the file). ``max_length`` is the truncation used in training:
    audits score with the same.
    """

    dataset: str
    source_split: str
    seed: int
    member_ids: list[int]
    nonmember_ids: list[int]
    member_texts: list[Example]
    nonmember_texts: list[Example]
    member_labels: list[int] | None = None
    nonmember_labels: list[int] | None = None
    max_length: int | None = None
    task: str = "sequence-classification"
    extra: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    nonmember_split: str | None = None

    def __post_init__(self) -> None:
        self._check_lengths()
        self.member_texts = as_examples(self.member_texts, "MembershipSplit.member_texts")
        self.nonmember_texts = as_examples(self.nonmember_texts, "MembershipSplit.nonmember_texts")
        if is_pair(self.member_texts[0]) != is_pair(self.nonmember_texts[0]):
            raise ConfigError("MembershipSplit.nonmember_texts: expected the same kind of example as member_texts "
                              "(texts, or text pairs)")
        # ids index one split unless the non-members come from another: only then can equal ids be distinct rows
        same_rows = self.nonmember_split in (None, self.source_split)
        overlap = set(self.member_ids) & set(self.nonmember_ids) if same_rows else set()
        if overlap:
            raise ConfigError(f"MembershipSplit.nonmember_ids: expected ids disjoint from member_ids, "
                              f"{len(overlap)} shared (e.g. {sorted(overlap)[:3]})")
        expected = self._compute_fingerprint()
        if self.fingerprint and self.fingerprint != expected:
            raise ConfigError("MembershipSplit.fingerprint: the stored fingerprint does not match the stored examples "
                              "(was the split file edited?)")
        self.fingerprint = expected

    def _check_lengths(self) -> None:
        if not self.member_ids or not self.nonmember_ids:
            raise ConfigError("MembershipSplit: expected at least one member and one non-member")
        for prefix in ("member", "nonmember"):
            n = len(getattr(self, f"{prefix}_ids"))
            for suffix in ("texts", "labels"):
                values = getattr(self, f"{prefix}_{suffix}")
                if values is not None and len(values) != n:
                    raise ConfigError(f"MembershipSplit.{prefix}_{suffix}: expected {n} entries "
                                      f"(one per {prefix} id), got {len(values)}")
        if (self.member_labels is None) != (self.nonmember_labels is None):
            raise ConfigError("MembershipSplit.nonmember_labels: expected labels for both members and non-members "
                              "or for neither")

    def _compute_fingerprint(self) -> str:
        return fingerprint(self.texts, self.labels)

    @property
    def texts(self) -> list[Example]:
        """Members first, then non-members: the order of :attr:`is_member`."""
        return [*self.member_texts, *self.nonmember_texts]

    @property
    def labels(self) -> list[int] | None:
        if self.member_labels is None or self.nonmember_labels is None:
            return None
        return [*self.member_labels, *self.nonmember_labels]

    @property
    def is_member(self) -> np.ndarray:
        """Boolean membership of :attr:`texts`: the ground truth every attack is scored against."""
        return np.r_[np.ones(len(self.member_ids), bool), np.zeros(len(self.nonmember_ids), bool)]

    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    @property
    def n_nonmembers(self) -> int:
        return len(self.nonmember_ids)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        """Build from :meth:`to_dict` output; unknown keys are an error naming the allowed ones."""
        if not isinstance(payload, dict):
            raise ConfigError(f"MembershipSplit: expected a mapping, got {type(payload).__name__}")
        payload = {k: v for k, v in payload.items() if k != VERSION_KEY}
        reject_unknown_keys("MembershipSplit", payload, cls.__dataclass_fields__)
        try:
            return cls(**payload)
        except TypeError as exc:
            raise ConfigError(f"MembershipSplit: malformed split ({exc})") from None

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``membership_split.json`` into ``directory`` atomically (stamped with the hfprune version)."""
        from hfprune import __version__

        path = Path(directory) / SPLIT_FILE
        atomic_write_json(path, {**self.to_dict(), VERSION_KEY: __version__})
        return path

    @classmethod
    def load(cls, directory_or_file: str | os.PathLike) -> Self:
        """Read the split a training run saved: a model directory holding ``membership_split.json``, or the file."""
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / SPLIT_FILE
        if not path.is_file():
            raise ConfigError(f"{path}: no membership split here; the training run must record one "
                              "(hfprune.audit.privacy.finetune_on_members or train_canary_lm)")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not valid UTF-8 JSON ({exc})") from None
        return cls.from_dict(payload)


def draw_split(
    n_rows: int,
    n_members: int,
    n_nonmembers: int,
    seed: int,
    exclude: set[int] | frozenset[int] = frozenset(),
) -> tuple[list[int], list[int]]:
    """Disjoint random member and non-member row ids among ``range(n_rows)`` minus ``exclude``.

    Drawing both from one shuffled pool makes them the same distribution, which membership inference assumes.
    """
    pool = np.setdiff1d(np.arange(n_rows), np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
    if n_members + n_nonmembers > pool.size:
        raise ConfigError(f"n_members + n_nonmembers: expected at most {pool.size} (rows available), "
                          f"got {n_members} + {n_nonmembers}")
    order = np.random.default_rng(seed).permutation(pool)
    return sorted(order[:n_members].tolist()), sorted(order[n_members:n_members + n_nonmembers].tolist())
