"""Tables in the README generated from config help metadata stay in sync with the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from transformers import TrainingArguments

from hfprune.distill.trainer import DistillationArguments
from hfprune.utils.config import help_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_distillation_argument_with_its_help():
    added = [f.name for f in dataclasses.fields(DistillationArguments)
             if f.name not in {g.name for g in dataclasses.fields(TrainingArguments)}]
    table = help_table(DistillationArguments, TrainingArguments)
    assert table in README.read_text(encoding="utf-8")
    assert [row.split("`")[1] for row in table.splitlines()[2:]] == added
    assert all(f.metadata.get("help") for f in dataclasses.fields(DistillationArguments) if f.name in added)
