"""Run by torch.distributed.run in test_launch: a process that joins the launch through hfprune
(``distributed.join``), takes the main process's result, and exits without leaving the group itself. A handler
registered before the join runs after hfprune's (atexit runs handlers last-in first-out) and writes LOG/rank<r>.json:
what the main process sent, and whether the group was still there at exit."""

import atexit
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from hfprune.utils import distributed


def main(log: Path) -> None:
    received: list = []

    def record() -> None:
        log.mkdir(parents=True, exist_ok=True)
        (log / f"rank{os.environ['RANK']}.json").write_text(json.dumps(
            {"received": received, "group_at_exit": dist.is_initialized()}))

    atexit.register(record)
    distributed.join("cpu")
    distributed.join("cpu")  # joined already: a no-op, and no second exit handler
    received.append(distributed.main_only(lambda: {"from": distributed.rank()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
