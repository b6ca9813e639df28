"""``load_dataset``: the Hub dataset names users type, served from the local copies in the data folder.

A registry maps each dataset (and its aliases) to the files of each split, a reader and Hub-shaped features, so a
script written for ``datasets.load_dataset("glue", "sst2")`` gets the same splits, columns and label names
offline. A local folder of JSON-lines / CSV files loads through ``hfprune.data.folder`` (checked row by row); any
other name without a local copy falls back to the Hub.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from hfprune.data import folder, paths, readers
from hfprune.data.paths import DATA_DIR_ENV
from hfprune.errors import ConfigError, DataError
from hfprune.utils.config import fingerprint
from hfprune.utils.logging import get_logger
from hfprune.utils.registry import add, check_free

if TYPE_CHECKING:
    import datasets

logger = get_logger(__name__)

# bump when a reader changes what it returns: it invalidates the Arrow cache
LOADER_VERSION = "1"

# column -> "string" / "int32", or a tuple of class names for a ClassLabel
FeatureSpec = Mapping[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class SplitSource:
    """One split of a local dataset: its files (relative to the data folder) and the reader that parses them."""

    files: tuple[str, ...]
    read: readers.Reader
    note: str | None = None  # logged as a warning whenever the split is loaded (how it differs from the Hub)


@dataclass(frozen=True)
class LocalDataset:
    """A dataset with a local copy. ``hub_path``/``hub_config`` name the Hub version used as fallback (None: the
    Hub has no equivalent of this layout). ``missing_splits`` names Hub splits absent locally, and why."""

    name: str
    features: FeatureSpec
    splits: Mapping[str, SplitSource]
    hub_path: str | None
    hub_config: str | None = None
    aliases: tuple[str, ...] = ()
    missing_splits: Mapping[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, LocalDataset] = {}
_ALIASES: dict[str, str] = {}


def register(spec: LocalDataset) -> LocalDataset:
    """Add ``spec`` under its name and aliases (case-insensitive); a name taken twice is an error."""
    keys = [key.lower() for key in (spec.name, *spec.aliases)]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"dataset {spec.name!r}: expected distinct names and aliases, got {keys}")
    for key in keys:  # every name checked before any is added
        check_free(_ALIASES, key, f"dataset {spec.name!r}: name")
    _ALIASES.update(dict.fromkeys(keys, spec.name))
    return add(_REGISTRY, spec.name, spec, "dataset")


def eval_split(dataset: str, requested: str | None = None, available: Iterable[str] | None = None) -> str:
    """The split every pipeline evaluates on: ``requested`` when given, else validation when the dataset has it,
    else test. ``available`` are the split names of the loaded dataset; without them a registered dataset's splits
    are used, or a local data folder's split files (an unregistered Hub dataset is assumed to have a validation
    split)."""
    if requested:
        return requested
    if available is None and folder.is_data_folder(dataset):  # a local data folder: the split files it holds
        available = folder.split_files(Path(dataset).expanduser())
    if available is None:
        spec = lookup(dataset)
        available = None if spec is None else spec.splits
    return "validation" if available is None or "validation" in available else "test"


def lookup(name: str) -> LocalDataset | None:
    """The registered dataset called ``name`` (or one of its aliases), else None."""
    canonical = _ALIASES.get(name.strip().lower())
    return _REGISTRY[canonical] if canonical else None


def available_datasets() -> list[str]:
    """Canonical names of the datasets that have a local reader."""
    return sorted(_REGISTRY)


def build_features(spec: FeatureSpec) -> datasets.Features:
    """``datasets.Features`` from a compact spec: class-name tuples become ``ClassLabel``."""
    import datasets

    return datasets.Features(
        {
            column: datasets.ClassLabel(names=list(kind)) if isinstance(kind, tuple) else datasets.Value(kind)
            for column, kind in spec.items()
        }
    )


def _register_builtin() -> None:
    """The local copies described in the data folder's README (see each folder's SOURCE.md)."""
    sst2 = {"sentence": "string", "label": readers.SST2_LABELS, "idx": "int32"}
    register(LocalDataset(
        name="glue/sst2", hub_path="nyu-mll/glue", hub_config="sst2", features=sst2,
        aliases=("sst2", "sst-2", "glue/sst-2", "stanfordnlp/sst2", "nyu-mll/glue/sst2"),
        splits={
            "train": SplitSource(("sst2/train.tsv",), readers.read_sst2_glue),
            "validation": SplitSource(("sst2/dev.tsv",), readers.read_sst2_glue),
            "test": SplitSource(("sst2/test_labelled.tsv",), readers.read_sst2_labelled_test),
        },
    ))
    register(LocalDataset(
        name="imdb", hub_path="stanfordnlp/imdb", aliases=("stanfordnlp/imdb",),
        features={"text": "string", "label": readers.IMDB_LABELS},
        splits={
            "train": SplitSource(("imdb/train.jsonl.gz",), readers.read_imdb_jsonl),
            "test": SplitSource(("imdb/test.jsonl.gz",), readers.read_imdb_jsonl),
        },
        missing_splits={"unsupervised": "the 50,000 unlabelled reviews are not in the local copy"},
    ))
    register(LocalDataset(
        name="ag_news", hub_path="fancyzhx/ag_news", aliases=("fancyzhx/ag_news", "agnews", "ag-news"),
        features={"text": "string", "label": readers.AG_NEWS_LABELS},
        splits={
            "train": SplitSource(
                ("ag_news/train_subset.tsv",), readers.read_ag_news_subset,
                note="ag_news train is a local 10,001-row sample of the Hub's 120,000-row train split, "
                "and its texts are descriptions without titles",
            ),
            "test": SplitSource(("ag_news/test.csv",), readers.read_ag_news_csv),
        },
    ))
    register(LocalDataset(
        name="glue/rte", hub_path="nyu-mll/glue", hub_config="rte", aliases=("rte", "nyu-mll/glue/rte"),
        features={"sentence1": "string", "sentence2": "string", "label": readers.RTE_LABELS, "idx": "int32"},
        splits={
            split: SplitSource((f"rte/{file}.tsv",), readers.read_rte)
            for split, file in (("train", "train"), ("validation", "dev"), ("test", "test"))
        },
    ))
    rt_files = ("rotten_tomatoes_polarity/rt-polarity.pos", "rotten_tomatoes_polarity/rt-polarity.neg")
    register(LocalDataset(
        name="rotten_tomatoes", hub_path="cornell-movie-review-data/rotten_tomatoes",
        aliases=("cornell-movie-review-data/rotten_tomatoes", "rotten-tomatoes"),
        features={"text": "string", "label": readers.ROTTEN_TOMATOES_LABELS},
        splits={
            split: SplitSource(rt_files, partial(readers.read_rotten_tomatoes, split=split))
            for split in readers.ROTTEN_TOMATOES_SIZES
        },
    ))
    novels = tuple(f"jane_austen/{novel}.txt" for novel in (
        "sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"))
    for name, files, aliases in (
        ("jane_austen", novels, ("austen", "janeaustenr")),
        ("tiny_shakespeare", ("tiny_shakespeare/input.txt",), ("shakespeare", "karpathy/tiny_shakespeare")),
    ):
        register(LocalDataset(
            name=name, hub_path=None, aliases=aliases, features={"text": "string"},
            splits={
                split: SplitSource(files, partial(readers.read_paragraph_corpus, split=split))
                for split in readers.TEXT_SPLIT_FRACTIONS
            },
        ))
    _register_wikitext()


def _register_wikitext() -> None:
    """WikiText valid/test: the local files are WikiText-103's tokenised ``.tokens`` (same articles as WikiText-2)."""
    exact = "wikitext-103-v1"
    for config in ("wikitext-103-v1", "wikitext-103-raw-v1", "wikitext-2-raw-v1", "wikitext-2-v1"):
        note = None if config == exact else (
            f"wikitext/{config}: the local copy is WikiText-103's tokenised valid/test, whose words outside the "
            "WikiText-103 vocabulary are <unk>; it differs from this config's Hub text in those tokens"
        )
        register(LocalDataset(
            name=f"wikitext/{config}", hub_path="Salesforce/wikitext", hub_config=config,
            aliases=(config, f"salesforce/wikitext/{config}"), features={"text": "string"},
            splits={
                split: SplitSource((f"wikitext103_valid_test/wiki.{file}.tokens",), readers.read_wikitext_lines, note)
                for split, file in (("validation", "valid"), ("test", "test"))
            },
            missing_splits={"train": "WikiText train is not in the local copy (only validation and test are)"},
        ))


_register_builtin()


def load_dataset(
    name: str,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    config: str | None = None,
) -> datasets.DatasetDict | datasets.Dataset:
    """Load ``name`` like ``datasets.load_dataset``, from the local data folder when it has a copy.

    ``name`` is a Hub name (``"glue/sst2"``, ``"stanfordnlp/imdb"``, ``"ag_news"``...); the Hub's two-argument form
    ``load_dataset("glue", "sst2")`` also works (or pass ``config=``). Returns a ``DatasetDict`` of all splits when
    ``split`` is None, else that ``Dataset``. Columns, split names and ``ClassLabel`` names match the Hub, except:

    - ``glue/sst2`` test is the labelled SST-2 test (1,821 rows); the Hub's GLUE test is unlabelled (label -1);
    - ``ag_news`` train is a 10,001-row sample of the 120k train, descriptions only (a warning is logged);
    - ``rotten_tomatoes`` uses the Hub's sizes 8,530/1,066/1,066 with a seeded split, not the Hub's exact rows;
    - ``jane_austen`` / ``tiny_shakespeare`` (no Hub equivalent) have one row per paragraph, split 90/5/5 per file;
    - ``wikitext/*`` has validation and test only, from WikiText-103's tokenised files.

    The data folder is ``data_dir``, else ``$HFPRUNE_DATA_DIR``, else ``../shared/data``. Names or splits without a
    local copy are loaded from the Hub; when that fails too, the DataError names the files looked for.
    """
    name, config, split = _normalise_request(name, config, split)
    full_name = f"{name}/{config}" if config else name
    spec = lookup(full_name)
    if spec is None and folder.is_data_folder(name):  # a local folder of JSON-lines / CSV files, never the Hub
        return folder.load_folder(name, split)
    if spec is None and _looks_like_path(name):
        raise DataError(f"dataset {name!r}: no such folder ({Path(name).expanduser().absolute()}); expected a local "
                        "folder of train/validation/test .jsonl or .csv files, or a dataset name")
    root = paths.data_dir(data_dir)
    if spec is None:
        where = f"hfprune has no local copy of this name (it has: {', '.join(available_datasets())})"
        return _from_hub(full_name, name, config, split, root, where)
    wanted = list(spec.splits) if split is None else [_check_split(spec, split)]
    if split in spec.missing_splits:
        return _from_hub(spec.name, spec.hub_path, spec.hub_config, split, root, spec.missing_splits[split])
    missing = [root / file for s in wanted for file in spec.splits[s].files if not (root / file).is_file()]
    if missing:
        where = f"looked for {', '.join(map(str, missing))}"
        if spec.hub_path is None:
            raise _not_found(spec.name, split, root, where, "it has no Hub equivalent to fall back to")
        return _from_hub(spec.name, spec.hub_path, spec.hub_config, split, root, where)
    built = {s: _load_split(spec, s, root) for s in wanted}
    if split is not None:
        return built[split]
    import datasets

    return datasets.DatasetDict(built)


def _looks_like_path(name: str) -> bool:
    """A local path rather than a Hub name: the Hub would only answer "not found" for it."""
    return name.startswith(("/", "./", "../", "~"))


def _normalise_request(name: str, config: str | None, split: str | None) -> tuple[str, str | None, str | None]:
    """Accept the Hub's ``("glue", "sst2")`` form: a second argument that is a config, not a split, becomes one."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name: expected a non-empty string, got {name!r}")
    name = name.strip()
    if config is None and split is not None and lookup(name) is None and lookup(f"{name}/{split}") is not None:
        logger.debug("load_dataset(%r, %r): treating %r as the dataset config", name, split, split)
        return name, split, None
    return name, config, split


def _check_split(spec: LocalDataset, split: str) -> str:
    """``split`` if the local copy or the Hub has it; else a DataError listing the splits there are."""
    if split in spec.splits or split in spec.missing_splits:
        return split
    raise DataError(
        f"dataset {spec.name!r} has no split {split!r}; available splits: {sorted(spec.splits)}"
        + "".join(f"; {name!r} exists on the Hub only ({why})" for name, why in spec.missing_splits.items())
    )


def _load_split(spec: LocalDataset, split: str, root: Path) -> datasets.Dataset:
    """Parse one split (or reuse its Arrow cache, keyed on the files' size and mtime and the loader version)."""
    source = spec.splits[split]
    if source.note:
        logger.warning(source.note)
    files = [root / file for file in source.files]
    key_material = [LOADER_VERSION, spec.name, split, dict(spec.features)] + [
        [str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files
    ]
    key = fingerprint(key_material)
    target = paths.cache_dir() / spec.name.replace("/", "__") / f"{split}-{key}"
    return _cached(target, lambda: _build(spec, source, files))


def _build(spec: LocalDataset, source: SplitSource, files: list[Path]) -> datasets.Dataset:
    import datasets

    logger.info("reading %s from %s", spec.name, ", ".join(map(str, files)))
    try:
        columns = source.read(files)
    except UnicodeDecodeError:
        raise _not_utf8(files) from None
    if not any(len(values) for values in columns.values()):
        raise DataError(f"{', '.join(map(str, files))}: no examples in this {spec.name} split; expected at least one "
                        "row")
    return datasets.Dataset.from_dict(columns, features=build_features(spec.features))


def _not_utf8(files: list[Path]) -> DataError:
    """A DataError naming the first of ``files`` that is not UTF-8 text (gzip-compressed or not) and where."""
    for path in files:
        try:
            readers.read_text(path)
        except DataError as exc:
            return exc
    return DataError(f"{', '.join(map(str, files))}: not valid UTF-8; expected UTF-8 text")


def _cached(target: Path, build: Callable[[], datasets.Dataset]) -> datasets.Dataset:
    """Load ``target`` (an Arrow dataset saved by ``save_to_disk``), building and saving it first if absent.

    Saved into a temporary sibling and renamed, so a concurrent or interrupted run never sees half a cache. If the
    cache folder cannot be written, the dataset is returned from memory.
    """
    import datasets

    if (target / "state.json").is_file():
        try:
            return datasets.load_from_disk(str(target))
        except Exception as exc:  # noqa: BLE001 - any broken cache is rebuilt from the source files
            logger.warning("ignoring unreadable dataset cache %s (%s: %s)", target, type(exc).__name__, exc)
    dataset = build()
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _quiet_progress():
            dataset.save_to_disk(str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError as exc:
        logger.warning("could not cache the parsed dataset in %s (%s); using it from memory", target, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return dataset
    return datasets.load_from_disk(str(target))


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide datasets' progress bars for a sub-second internal step, restoring the caller's setting after."""
    from datasets import utils as ds_utils

    if ds_utils.are_progress_bars_disabled():
        yield
        return
    with warnings.catch_warnings():  # HF_DATASETS_DISABLE_PROGRESS_BARS=0 has priority: then they just stay on
        warnings.simplefilter("ignore")
        ds_utils.disable_progress_bars()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds_utils.enable_progress_bars()


def _from_hub(
    label: str, path: str | None, config: str | None, split: str | None, root: Path, where: str
) -> datasets.DatasetDict | datasets.Dataset:
    """``datasets.load_dataset`` from the Hub; any failure (offline, unknown name) becomes a DataError."""
    import datasets

    logger.info("%s: %s; trying the Hub (%s%s)", label, where, path, f", {config}" if config else "")
    try:
        return datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # offline, unknown name, auth: all mean "not loadable here"
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"the Hub fallback failed ({type(exc).__name__}: {first_line})"
        raise _not_found(label, split, root, where, reason) from exc


def _not_found(label: str, split: str | None, root: Path, where: str, reason: str) -> DataError:
    """The error for a dataset found neither locally nor on the Hub: what was looked for, where, and the knob."""
    what = f"dataset {label!r}" + (f" split {split!r}" if split else "")
    return DataError(
        f"{what} could not be loaded: {where}; {reason}. "
        f"Point {DATA_DIR_ENV} at a folder holding the local copies "
        f"({DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV) or '<unset>'}; data folder used: {root})."
    )
