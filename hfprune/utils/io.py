"""Atomic writes: a reader, or a crash mid-write, never sees a half-written file or folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            from hfprune.errors import DiskFullError

            raise DiskFullError(f"{path}: the disk is full (no space left on device while writing it); the "
                                "previous file, if any, is intact. Free some space and run again") from exc
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as sorted, indented JSON, atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_benchmark(folder: str | os.PathLike, stem: str, payload: Any, markdown: str) -> None:
    """A benchmark's results: ``folder/stem.json`` (the numbers) and ``folder/stem.md`` (the table), atomically,
    the folder made if needed; the markdown is also printed (scripts/bench_*.py)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / f"{stem}.json", payload)
    atomic_write_text(folder / f"{stem}.md", markdown)
    print(markdown)


def contained_path(root: str | os.PathLike, relative: str | os.PathLike, key: str) -> Path:
    """``root / relative``, refusing (ConfigError naming ``key``) a ``relative`` that is absolute, climbs with
    ``..`` or resolves (through links) outside ``root``: names derived from recipes never write elsewhere."""
    from hfprune.errors import ConfigError

    text = os.fspath(relative)
    parts = Path(text).parts
    if not text or Path(text).is_absolute() or ".." in parts or "\x00" in text:
        raise ConfigError(f"{key}: expected a relative path inside {root} without '..', got {text!r}")
    path = Path(root) / text
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise ConfigError(f"{key}: {text!r} resolves to {path.resolve()}, outside {base}")
    return path


def refuse_symlink(path: str | os.PathLike, key: str, expected: str = "a real folder, not a link") -> None:
    """ConfigError naming ``key`` when ``path`` is a symbolic link: hfprune never writes, replaces, reads as part of
    its own output, or uploads, through a link (it would act on whatever the link points at)."""
    from hfprune.errors import ConfigError

    if Path(path).is_symlink():
        raise ConfigError(f"{key}: {path} is a symbolic link (to {os.readlink(path)}); expected {expected}")


def refuse_links_within(folder: str | os.PathLike, key: str) -> None:
    """``refuse_symlink`` for everything inside ``folder`` (links are listed, never entered): a run folder holds only
    what hfprune wrote, and a linked ``dense/`` or ``plots/`` would make it read or write elsewhere."""
    for parent, folders, files in os.walk(folder):
        for name in sorted(folders + files):
            refuse_symlink(Path(parent) / name, key, f"a folder written by hfprune, without links (remove {name})")


def refuse_inputs_inside(folder: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], key: str,
                         action: str = "--overwrite would delete") -> None:
    """ConfigError naming ``key`` when one of ``inputs`` (dotted key -> path the run reads; None or a Hub name that
    is no local path is skipped) lies inside ``folder`` or is ``folder``, links resolved on both sides: replacing
    or emptying ``folder`` must never remove a model or data set the same run reads."""
    from hfprune.errors import ConfigError

    base = Path(folder).expanduser().resolve()
    for name, value in inputs.items():
        if value is None or not os.path.lexists(os.path.expanduser(value)):
            continue
        where = Path(os.path.expanduser(value)).resolve()
        if where.is_relative_to(base):
            raise ConfigError(f"{key}: {action} {name} ({where}), which lies inside {base}; move it out of that "
                              f"folder or choose another {key}")


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished ``staging`` folder to ``target``. An existing ``target`` is renamed aside first and deleted
    only once the new one is in place: a process killed at any point leaves one complete folder at ``target`` (or,
    between the two renames, the old one at ``.<name>.old-<pid>``)."""
    staging, target = Path(staging), Path(target)
    refuse_symlink(target, "output folder", "a folder to replace, not a link (the link is never followed)")
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)


def remove_leftovers(target: str | os.PathLike, kinds: tuple[str, ...] = ("staging", "old")) -> None:
    """Remove the hidden ``.<name>.<kind>-<pid>`` folders beside ``target`` that a killed process left (its PID is
    gone); those of a live process, this one included, are kept. An ``old`` leftover with no ``target`` beside it
    is the previous complete folder of an interrupted swap: it is renamed back to ``target``, never deleted."""
    from hfprune.utils.lock import pid_alive

    target = Path(target)
    for kind in kinds:
        dead = []
        for leftover in target.parent.glob(f".{target.name}.{kind}-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or pid_alive(int(pid))):
                continue
            dead.append(leftover)
        if kind == "old" and dead and not os.path.lexists(target):
            # a process killed between replace_folder's two renames: its ".old" copy is the only complete folder,
            # so it goes back to ``target`` rather than being deleted (the newest, should there be several)
            newest = max(dead, key=lambda path: path.stat().st_mtime)
            os.replace(newest, target)
            dead.remove(newest)
        for leftover in dead:
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(
    target: str | os.PathLike, publish: Callable[[Path, Path], None] | None = replace_folder, kind: str = "staging"
) -> Iterator[Path]:
    """Build ``target`` in a hidden ``.<name>.<kind>-<pid>`` folder beside it (same file system: the publishing
    rename is atomic). When the block ends without an error the folder is handed to ``publish(staging, target)``
    (default :func:`replace_folder`; ``None`` for a scratch folder that is never published); it is removed in every
    case. Leftovers of the same kind from killed processes are removed first."""
    target = Path(target)
    remove_leftovers(target, (kind, "old"))
    staging = target.with_name(f".{target.name}.{kind}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)  # this PID's: a dead process's whose PID was reused
    staging.mkdir(parents=True)
    try:
        yield staging
        if publish is not None:
            publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) means the disk or the quota is full. safetensors and
    tokenizers report it as their own exception types, with the OS message in the text."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if any(os.strerror(code) in str(exc) for code in _DISK_FULL):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def disk_full_reported(target: str | os.PathLike) -> Iterator[None]:
    """Run a block that writes ``target`` (through a staging folder); a full disk becomes one DiskFullError naming
    ``target`` and saying what is left there (the callers only rename a finished folder into place)."""
    from hfprune.errors import DiskFullError, HfpruneError

    existed = Path(target).exists()
    try:
        yield
    except HfpruneError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        left = "its previous contents are intact" if existed else "nothing was written there"
        raise DiskFullError(f"{target}: the disk is full (no space left on device while writing it); {left}. Free "
                            "some space and run again") from exc
