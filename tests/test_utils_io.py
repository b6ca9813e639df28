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


def test_staged_folder_publishes_only_a_finished_folder(tmp_path):
    """The folder appears at ``target`` once the block ends without error; an error leaves the old one, nothing else."""
    from hfprune.utils.io import staged_folder

    target = tmp_path / "model"
    with staged_folder(target) as staging:
        assert staging == tmp_path / f".model.staging-{os.getpid()}" and staging.is_dir()
        (staging / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    try:
        with staged_folder(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("killed mid-way")
    except RuntimeError:
        pass
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_staged_folder_removes_what_dead_processes_left_and_keeps_live_ones(tmp_path):
    import subprocess
    import sys

    from hfprune.utils.io import staged_folder

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: its folders are leftovers
    for name in (f".model.staging-{dead_pid}", f".model.old-{dead_pid}", f".model.staging-{os.getppid()}",
                 f".model.trainer-{dead_pid}"):
        (tmp_path / name).mkdir()
    (tmp_path / "model").mkdir()  # a complete folder is in place, so the dead process's old copy is a leftover
    with staged_folder(tmp_path / "model", publish=None, kind="staging") as scratch:
        assert scratch.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", f".model.staging-{os.getppid()}",
                                                                 f".model.trainer-{dead_pid}"])


def test_an_interrupted_swap_gets_its_old_folder_back_instead_of_losing_it(tmp_path):
    """Killed between replace_folder's two renames, a process leaves the previous complete folder only as
    ``.<name>.old-<pid>``: the next staged build puts it back, and a failed build then leaves it intact."""
    import subprocess
    import sys

    from hfprune.utils.io import staged_folder

    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True).stdout)
    old = tmp_path / f".model.old-{dead_pid}"
    old.mkdir()
    (old / "weights").write_text("the only copy")
    try:
        with staged_folder(tmp_path / "model"):
            raise RuntimeError("the new build fails")
    except RuntimeError:
        pass
    assert (tmp_path / "model" / "weights").read_text() == "the only copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
