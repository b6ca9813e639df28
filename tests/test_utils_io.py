"""Atomic writes."""

from __future__ import annotations

import os

from hfprune.utils.io import atomic_write_json


def test_atomic_writes_leave_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
