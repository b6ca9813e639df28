"""One stage's folder: reused when its ``stage.json`` done-marker matches the settings' fingerprint, else computed
in a hidden staging folder, marked done (marker last, atomically) and renamed into place, so an interrupted run or
sweep resumes and a half-built stage is never taken for a finished one (:mod:`hfprune.pipeline.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfprune.errors import ConfigError
from hfprune.pipeline.results import STAGE_FILE, StageResult
from hfprune.utils import distributed
from hfprune.utils.io import atomic_write_json, disk_full_reported, staged_folder
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)


def run_stage(stage_dir: Path, fingerprint: str, compute: Callable[[Path], StageResult],
              overwrite: bool = False, follow: Callable[[Path], Any] | None = None) -> tuple[StageResult, bool]:
    """The stage's result: read from its done-marker when finished with this ``fingerprint``, else computed into a
    staging folder, marked done (marker last) and renamed into place. Returns (result, computed).

    Under a launch the main process decides and computes; every other process runs ``follow`` (its share of the
    stage's training, in a private scratch folder; a no-op for a stage that trains nothing, but named: a stage
    without it is refused under a launch rather than leaving the main process's training waiting for the others),
    waits for the main process to publish the stage and reads it."""
    if distributed.launched() and follow is None:
        raise ConfigError(f"{stage_dir.name}: this stage cannot run on {distributed.world_size()} launched processes "
                          "(it names no part for the other processes to train); run it in one process")
    finished = distributed.main_only(lambda: _finished_stage(stage_dir, fingerprint, overwrite))
    if finished is not None:
        return finished, False
    # staged_folder also removes what an interrupted run of this stage left
    with disk_full_reported(stage_dir), distributed.main_writes(lambda: staged_folder(stage_dir)) as staging:
        if distributed.is_main():
            result = compute(staging)
            atomic_write_json(staging / STAGE_FILE, result.to_dict())  # the done-marker: written last
        else:
            follow(staging)
    return (result if distributed.is_main() else StageResult.load(stage_dir)), True


def _finished_stage(stage_dir: Path, fingerprint: str, overwrite: bool) -> StageResult | None:
    """The stage's result when it finished earlier with this ``fingerprint``; None when it is to be computed."""
    if not (stage_dir / STAGE_FILE).is_file() or overwrite:
        return None
    result = StageResult.load(stage_dir)
    if result.fingerprint != fingerprint:
        raise ConfigError(f"{stage_dir}: computed from different settings; pass --overwrite to recompute it")
    logger.info("%s: finished earlier with the same settings; reusing it", stage_dir)
    return result
