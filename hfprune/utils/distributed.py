"""Many processes from one command (``accelerate launch`` / ``torchrun``): which process writes, and how the others
wait for it.

Every process of a launch runs the same command. Training is data parallel: each process trains on its share of
every batch, gradients and pruning scores are averaged, so every process holds the same model and the same masks.
Everything else (checks, evaluation, audits, files, locks, reports, Hub uploads) is the main process's (rank 0):
the others wait in :func:`main_only`, which hands them its result (or its error), or at the end of
:func:`main_writes`, after which they read what it wrote. A follower's own training writes only into a private
temporary folder, never into the output folder. In a single process every helper here is a plain call.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from hfprune.errors import HfpruneError

T = TypeVar("T")

# How long the followers wait for the main process. They wait through its audits, which take hours for a large
# model on a large sample; torch's default (30 minutes) would end such a run with a timeout on the waiting ranks.
WAIT_TIMEOUT = timedelta(hours=24)


# set while the main process works alone (a main_only block, an audit): the other processes are waiting for it,
# so nothing may need them
_ALONE = False


class MainProcessFailed(HfpruneError):
    """Raised on the other processes when the main process failed in a block they waited for (the main process
    reports the error itself; the others stop with this one)."""


def world_size() -> int:
    """The number of processes of this launch (``WORLD_SIZE``, set by torchrun and accelerate launch); 1 without."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank in the launch (``RANK``); 0 without a launch."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``): the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched() -> bool:
    """Whether this process is one of several started by a launcher."""
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes: rank 0, or the only process."""
    return rank() == 0


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Mark a block the main process runs while the others wait for it (e.g. the audits of a stage): work that
    needs every process is refused there by :func:`check_together` instead of waiting forever."""
    global _ALONE
    previous, _ALONE = _ALONE, True
    try:
        yield
    finally:
        _ALONE = previous


def check_together(what: str) -> None:
    """Refuse ``what`` (work every process must take part in: a Trainer) where only the main process works
    (:func:`main_only`, :func:`alone`) and the others wait for its result and would never join: it would wait
    forever."""
    if _ALONE and launched():
        raise HfpruneError(f"{what}: needs every launched process, but runs where only the main process works (an "
                           "audit or a main_only block) and the others wait for it; run it where every process "
                           "takes part (a stage's training)")


def join(device: str) -> None:
    """Join the launch's process group before the first collective (a no-op in one process or once joined), with
    :data:`WAIT_TIMEOUT` so followers can wait through the main process's audits. ``device`` is the resolved device
    name: gloo for ``cpu``, nccl for ``cuda``. The Trainers built later reuse this group."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    from accelerate import PartialState

    PartialState(cpu=device == "cpu", timeout=WAIT_TIMEOUT)
    if not dist.is_initialized():
        raise HfpruneError(f"WORLD_SIZE={world_size()}: this process was launched as one of several, but torch."
                           f"distributed could not form a group on device {device!r}; expected torchrun or "
                           "accelerate launch with a backend for it (gloo on the CPU, nccl on CUDA)")
    # The group this process formed is left before the interpreter tears down: a process that exits holding it
    # can be killed by SIGABRT ("terminate called without an active exception") when gloo's worker threads free
    # their tensors during finalization - a finished run then ends with exit code -6. atexit handlers run while the
    # interpreter is still whole. Only a group formed here is left; one the caller formed stays the caller's.
    atexit.register(_leave)


def _leave() -> None:
    """Destroy the default process group if it is still there (registered by :func:`join` to run at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _broadcast(payload: Any) -> Any:
    """The main process's ``payload``, on every process (pickled; nccl groups send it through this process's GPU)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("hfprune.utils.distributed.join() must be called before a collective")
    box = [payload if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _failure(exc: BaseException) -> tuple[bool, str]:
    return False, f"{type(exc).__name__}: {exc}"


def _outcome(payload: tuple[bool, Any]) -> Any:
    ok, value = payload
    if not ok:
        raise MainProcessFailed(f"the main process (rank 0) failed: {value}")
    return value


def main_only(fn: Callable[[], T]) -> T:
    """``fn()`` on the main process, its result sent to every process; the others wait and never call ``fn``. An
    error in ``fn`` is raised on the main process and, as :class:`MainProcessFailed`, on the others, so all stop
    together. ``fn`` must not itself need the other processes (no training, no Trainer evaluation)."""
    if not launched():
        return fn()
    if is_main():
        try:
            with alone():
                value = fn()
        except BaseException as exc:
            _broadcast(_failure(exc))
            raise
        return _outcome(_broadcast((True, value)))
    return _outcome(_broadcast(None))


@contextlib.contextmanager
def main_writes(folder: Callable[[], AbstractContextManager[Path]]) -> Iterator[Path]:
    """The folder a block writes into. The main process enters ``folder()`` (e.g. a staging folder under the output
    folder's lock, published when the block ends). Every other process gets a private temporary folder, outside
    the output folder and removed after the block, and then waits until the main process has left its own block:
    what it published can be read once this returns. An error on the main process reaches the others as
    :class:`MainProcessFailed`. Used around work that every process must take part in (training)."""
    if not launched():
        with folder() as path:
            yield path
        return
    if not is_main():
        with tempfile.TemporaryDirectory(prefix=f"hfprune-rank{rank()}-") as scratch:
            yield Path(scratch)
        _outcome(_broadcast(None))
        return
    try:
        with folder() as path:
            yield path
    except BaseException as exc:
        _broadcast(_failure(exc))
        raise
    _outcome(_broadcast((True, None)))
