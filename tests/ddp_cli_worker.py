"""Run by torch.distributed.run in test_launch: the ``hfprune`` CLI on 2 CPU processes (gloo), the commands given as
JSON one after another in the same processes (so a second ``run`` is a rerun). Each rank writes LOG/rank<r>.json,
outside the run folder: every write-like file-system event under ROOT (a ``sys.addaudithook`` hook sees every open
for writing, rename, mkdir, removal, ...), the files it opened there for reading, the kept units of each student
it trained, and per command its exit code and how often it trained, evaluated and audited."""

import json
import os
import sys
import time
from pathlib import Path

# file-system audit events that change something; "open" is judged by its mode and flags
CHANGING = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.move", "os.symlink",
            "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def main(log: Path, root: Path, commands: list[list[str]]) -> None:
    root_text = str(root.resolve())
    writes: list[str] = []
    reads: set[str] = set()

    def inside(path) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None  # a file descriptor
        text = os.path.abspath(os.fsdecode(path))
        return text if text == root_text or text.startswith(root_text + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open" and (where := inside(args[0])):
            mode, flags = args[1], args[2] or 0
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or flags & WRITE_FLAGS:
                writes.append(f"open {where} {mode} {flags}")
            else:
                reads.add(where)
        elif event in CHANGING:
            touched = [w for w in map(inside, args[:2] if event in ("os.rename", "os.link", "os.symlink")
                                      else args[:1]) if w]
            writes.extend(f"{event} {w}" for w in touched)

    sys.addaudithook(hook)

    import torch.distributed as dist

    from hfprune.audit import model_audit
    from hfprune.cli.main import main as hfprune
    from hfprune.pipeline import stages
    from hfprune.pruning.callback import MovementPruningCallback
    from hfprune.pruning.structure import CONFIG_KEY

    calls: dict[str, int] = {}
    students: list = []
    masks: list = []
    train_end = MovementPruningCallback.on_train_end

    def record_masks(self, *args, **kwargs):  # every pruning run's final masks, before compaction
        masks.append({kind.value: [m.tolist() for m in values] for kind, values in self.pruner.masks.items()})
        return train_end(self, *args, **kwargs)

    MovementPruningCallback.on_train_end = record_masks

    def counted(module, name: str, after=None) -> None:
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            result = real(*args, **kwargs)
            if after is not None:
                after(result)
            return result

        setattr(module, name, wrapper)

    counted(stages, "train_dense")
    counted(stages, "prune_and_distill", after=lambda result: students.append(
        result[0].config.to_dict().get(CONFIG_KEY)))
    counted(stages, "evaluate_model")
    counted(model_audit, "run_model_audit")

    runs = []
    for i, argv in enumerate(commands):
        if i == len(commands) - 1 and dist.get_rank() == 1:
            # the follower reaches the last command late, after the main process has begun writing its run folder:
            # the run's checks must not judge that folder on the follower's side
            time.sleep(3)
        calls.clear()
        code = hfprune(argv)
        runs.append({"argv": argv, "code": code, "calls": dict(calls)})
    payload = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "runs": runs, "writes": writes,
               "reads": sorted(reads), "students": students, "masks": masks}
    log.mkdir(parents=True, exist_ok=True)
    (log / f"rank{dist.get_rank()}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]))
