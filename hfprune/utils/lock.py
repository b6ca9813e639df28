"""One run per output folder: an exclusive ``flock`` on ``<folder>/.hfprune.lock`` held for the run's life.

The kernel drops a ``flock`` when its process dies, however it dies (SIGKILL included), so a crashed run never
leaves a stale lock behind; the file itself stays (unlinking a lock file races with a process opening it) and holds
the PID of the run holding it, which the refusal names. The lock is re-entrant within one process: pipeline runs
nest (``prune`` fine-tunes its teacher into a sub-folder, ``run`` writes its report after its stages).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hfprune.errors import ConfigError, OutputDirLockedError

LOCK_FILE = ".hfprune.lock"

# resolved folder -> times this process holds its lock (re-entrant use)
_HELD: dict[Path, int] = {}


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a folder named after a dead one is a leftover to clean up)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_holder(directory: str | os.PathLike) -> int | None:
    """The PID recorded in ``directory``'s lock file (the last run that took it), or None."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, key: str = "output_dir") -> Iterator[Path]:
    """Hold the exclusive lock of ``directory`` (created if needed) for the block, or raise OutputDirLockedError
    naming the folder and the PID holding it. A folder this call created and left empty is removed again, so a run
    that fails before writing anything leaves nothing behind."""
    folder = Path(directory)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create {folder} ({exc.strerror or exc}); expected a writable "
                          "folder") from None
    resolved = folder.resolve()
    if _HELD.get(resolved):
        _HELD[resolved] += 1
        try:
            yield folder
        finally:
            _HELD[resolved] -= 1
        return
    path = folder / LOCK_FILE
    try:
        # O_NOFOLLOW: a lock file replaced by a link would otherwise have the PID written over its target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666)
        handle = open(fd, "a+", encoding="ascii")  # noqa: SIM115 - held open for the whole block
    except OSError as exc:
        if path.is_symlink():
            raise ConfigError(f"{key}: {path} is a symbolic link; expected the lock file hfprune writes (remove "
                              "the link)") from None
        raise ConfigError(f"{key}: cannot write {path} ({exc.strerror or exc}); expected a writable folder") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(folder)
            who = f"PID {holder}" if holder is not None else "another process"
            raise OutputDirLockedError(
                f"{key}: {folder} is in use by another hfprune run ({who} holds {path}); wait for it to finish or "
                "choose another output directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD[resolved] = 1
        try:
            yield folder
        finally:
            del _HELD[resolved]
            if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    folder.rmdir()
    finally:
        handle.close()  # closing the file releases the flock
