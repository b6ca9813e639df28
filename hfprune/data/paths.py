"""Where hfprune looks for its offline data: ``HFPRUNE_DATA_DIR``, else a ``shared/data`` folder next to the checkout.

Kept free of heavy imports: ``hfprune env`` and the TextAttack shim need the location without loading ``datasets``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

DATA_DIR_ENV = "HFPRUNE_DATA_DIR"
CACHE_DIR_ENV = "HFPRUNE_CACHE_DIR"

# the repository root: hfprune/data/paths.py -> hfprune/data -> hfprune -> repo
_REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def default_data_dirs() -> list[Path]:
    """Candidate data folders in search order: ``../shared/data`` from the working directory, then from the repo."""
    candidates = [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"]
    unique: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data folder to read: ``override``, else ``$HFPRUNE_DATA_DIR``, else the first existing default candidate.

    When nothing exists the repo-relative candidate is returned anyway, so that error messages can name the
    path that was looked for.
    """
    if override is not None:
        return Path(override).expanduser().resolve()
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser().resolve()
    candidates = default_data_dirs()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def nltk_data_dir(override: str | os.PathLike | None = None) -> Path | None:
    """``<data dir>/nltk_data`` when that folder exists (WordNet 3.0 and stopwords for TextAttack), else None."""
    candidate = data_dir(override) / "nltk_data"
    return candidate if candidate.is_dir() else None


def cache_dir() -> Path:
    """Where parsed local datasets are cached as Arrow files: ``$HFPRUNE_CACHE_DIR``, else under the HF datasets
    cache. Never inside the data folder, which may be read-only."""
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser().resolve()
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "hfprune_local"


@contextlib.contextmanager
def data_dir_env(data_dir: str | None) -> Iterator[None]:
    """Point hfprune's dataset loader at ``data.data_dir`` for the block (the pipeline stages read HFPRUNE_DATA_DIR)."""
    if data_dir is None:
        yield
        return
    previous = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(Path(os.path.expanduser(data_dir)).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = previous
