"""Security hardening (issue 22, items 1-4): what a run reads is never deleted, push never follows links, a model's
own code never runs, and nothing of a run folder, a weights index or a saved structure is trusted unchecked.

- ``--overwrite`` (run, sweep, audit) refuses an output folder holding one of its inputs (teacher, model, data),
  links resolved, with one line and nothing deleted or written;
- ``push`` uploads only allow-listed regular files; a link in the folder is refused, naming it, before any request;
- a config.json or tokenizer_config.json declaring ``auto_map`` (or a ``model_type`` hfprune does not prune) is
  refused before transformers reads it, with and without a terminal answering "y"; ``architectures`` never names
  what is instantiated;
- links inside a run folder (``plots/``, ``dense/``, the lock file) are refused, ``--overwrite`` included; shard
  paths of a safetensors index stay inside the model folder; the saved structure must agree with the config and
  the weights before anything is built.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers_security import model_loaders, tiny_dense_dir, tiny_pruned_dir, tiny_recipe

from hfprune.cli.main import main
from hfprune.errors import ConfigError, HfpruneError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` (links not followed): file bytes, link targets, folder markers."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = "-> " + os.readlink(path)
        elif path.is_file():
            entries[key] = path.read_bytes()
        else:
            entries[key] = "dir"
    return entries


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith(f"hfprune {argv[0]}: error: ")
    return err[-1]


# ----------------------------------------------------------------------------------- 1. --overwrite and inputs
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict]:
    """A finished ``hfprune run`` of a tiny BERT (dense + pruned stages, report, plots) and its recipe."""
    from hfprune.pipeline.runner import run_recipe
    from hfprune.recipes.schema import Recipe

    root = tmp_path_factory.mktemp("run")
    payload = tiny_recipe(tiny_dense_dir(root), root / "OUT")
    run_recipe(Recipe.from_dict(payload))
    return root, payload


def _recipe_file(folder: Path, payload: dict, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(payload))
    return path


@pytest.mark.parametrize("command", [["run"], ["sweep", "--sparsities", "0.5"]])
@pytest.mark.parametrize("link", [None, "teacher", "output"])
def test_overwrite_refuses_to_delete_a_teacher_inside_its_output_folder(finished_run, tmp_path, capsys, command,
                                                                        link):
    """The issue's reproduction: run A, then A + ``model.teacher: OUT/dense/model`` with --overwrite; also with the
    teacher, or output.dir, named through a link to the run folder."""
    root, payload = finished_run
    out = root / "OUT"
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    teacher = (tmp_path / "link" if link == "teacher" else out) / "dense" / "model"
    output = tmp_path / "link" if link == "output" else out
    before = _snapshot(out)
    recipe = _recipe_file(tmp_path, {**payload, "model": {**payload["model"], "teacher": str(teacher)},
                                     "output": {"dir": str(output)}})
    line = _error_line(capsys, [command[0], "--overwrite", str(recipe), *command[1:]])
    assert line == (f"hfprune {command[0]}: error: output.dir: --overwrite would delete model.teacher "
                    f"({out / 'dense' / 'model'}), which lies inside {out}; move it out of that folder or choose "
                    "another output.dir")
    assert _snapshot(out) == before  # nothing deleted, nothing written


def test_audit_overwrite_refuses_an_out_folder_holding_the_audited_model(finished_run, capsys):
    root, _ = finished_run
    stage = root / "OUT" / "pruned"
    before = _snapshot(stage)
    line = _error_line(capsys, ["audit", str(stage / "model"), "--data", "glue/sst2", "--privacy", "mia",
                                "--robustness", "none", "--split-from", str(root / "OUT" / "dense" / "model"),
                                "--out", str(stage), "--overwrite"])
    assert line == (f"hfprune audit: error: --out: --overwrite would delete MODEL_DIR ({stage / 'model'}), which "
                    f"lies inside {stage}; move it out of that folder or choose another --out")
    assert _snapshot(stage) == before


@pytest.mark.parametrize(("command", "key"), [("prune", "teacher"), ("finetune", "model")])
def test_prune_and_finetune_overwrite_refuse_an_input_inside_their_output(finished_run, tmp_path, capsys, command,
                                                                          key):
    root, _ = finished_run
    out = tmp_path / "out"
    model = shutil.copytree(root / "dense", out / "dense")
    before = _snapshot(tmp_path)
    line = _error_line(capsys, [command, f"--{key}", str(model), "--train-samples", "8", "--output-dir", str(out),
                                "--overwrite"])
    assert line == (f"hfprune {command}: error: output_dir: --overwrite would delete {key} ({model}), which lies "
                    f"inside {out}; move it out of that folder or choose another output_dir")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(("layout", "refused"), [
    ("equal", True),         # the input is the folder itself
    ("inside", True),        # a file deep inside it
    ("link-to-inside", True),  # the input is a link whose target lies inside
    ("folder-is-link", True),  # the folder is a link to the input's parent
    ("beside", False),       # a sibling folder whose name starts the same
    ("hub-name", False),     # a Hub id that is no local path
    ("none", False),
])
def test_refuse_inputs_inside_resolves_links_on_both_sides(tmp_path, layout, refused):
    from hfprune.utils.io import refuse_inputs_inside

    (tmp_path / "out" / "model").mkdir(parents=True)
    (tmp_path / "out-old").mkdir()
    folder, value = tmp_path / "out", None
    if layout == "equal":
        value = tmp_path / "out"
    elif layout == "inside":
        value = tmp_path / "out" / "model"
    elif layout == "link-to-inside":
        (tmp_path / "teacher").symlink_to(tmp_path / "out" / "model", target_is_directory=True)
        value = tmp_path / "teacher"
    elif layout == "folder-is-link":
        (tmp_path / "alias").symlink_to(tmp_path / "out", target_is_directory=True)
        folder, value = tmp_path / "alias", tmp_path / "out" / "model"
    elif layout == "beside":
        value = tmp_path / "out-old"
    elif layout == "hub-name":
        value = "sentence-transformers/all-MiniLM-L6-v2"
    if not refused:
        refuse_inputs_inside(folder, {"model.teacher": value}, "output.dir")
        return
    with pytest.raises(ConfigError, match=r"^output\.dir: --overwrite would delete model\.teacher \(.*\), which "
                       r"lies inside .*out; move it out of that folder or choose another output\.dir$"):
        refuse_inputs_inside(folder, {"model.teacher": value}, "output.dir")


def test_the_runner_lists_every_input_path(finished_run, tmp_path):
    from hfprune.data.paths import data_dir
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.recipes.schema import Recipe

    root, payload = finished_run
    data = tmp_path / "data"
    data.mkdir()
    recipe = Recipe.from_dict({**payload, "model": {**payload["model"], "teacher": str(root / "OUT/dense/model")},
                               "data": {**payload["data"], "data_dir": str(data)}})
    assert RecipeRunner(recipe, overwrite=True).input_paths() == {
        "model.name": payload["model"]["name"], "model.teacher": str(root / "OUT/dense/model"),
        "data.data_dir": str(data_dir(str(data))), "data.dataset": "glue/sst2"}


# ------------------------------------------------------------------------------------------------- 2. push
class RecordingHfApi:
    """Stands for ``huggingface_hub.HfApi``: records every call and what ``upload_folder`` would send."""

    calls: list[str] = []
    uploaded: dict[str, bytes] = {}

    def __init__(self, endpoint=None, token=None) -> None:
        self.endpoint = endpoint or "http://hub.invalid"

    def create_repo(self, repo_id, **kwargs):
        RecordingHfApi.calls.append("create_repo")
        return f"{self.endpoint}/{repo_id}"

    def upload_folder(self, repo_id, folder_path, **kwargs):
        RecordingHfApi.calls.append("upload_folder")
        RecordingHfApi.uploaded = {p.relative_to(folder_path).as_posix(): p.read_bytes()
                                   for p in Path(folder_path).rglob("*") if p.is_file()}
        return "commit"


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    RecordingHfApi.calls, RecordingHfApi.uploaded = [], {}
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return RecordingHfApi


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    return tiny_pruned_dir(tmp_path_factory.mktemp("pruned"))


def _copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target, symlinks=True)
    return target


SECRET = "hf_secret_token_never_uploaded"


@pytest.mark.parametrize("kind", ["file", "folder", "dangling"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_push_refuses_a_link_in_the_model_folder(pruned, tmp_path, capsys, fake_hub, kind, dry_run):
    model = _copy(pruned, tmp_path / "model")
    token = tmp_path / "home" / "token"
    token.parent.mkdir()
    token.write_text(SECRET)
    link, target = {"file": ("notes.txt", token), "folder": ("extra", token.parent),
                    "dangling": ("vocab.txt", tmp_path / "gone")}[kind]
    (model / link).symlink_to(target)
    line = _error_line(capsys, ["push", str(model), "--repo-id", "alice/x", *(["--dry-run"] if dry_run else [])])
    assert line == (f"hfprune push: error: MODEL_DIR: {model / link} is a symbolic link (to {target}); expected "
                    "regular files only: push never uploads through a link")
    assert fake_hub.calls == [] and fake_hub.uploaded == {}


def test_push_uploads_only_allow_listed_regular_files(pruned, tmp_path, capsys, fake_hub, caplog):
    model = _copy(pruned, tmp_path / "model")
    for name in ("notes.txt", "evil.py", "pytorch_model.bin", "id_rsa"):
        (model / name).write_text(SECRET)
    (model / "sub").mkdir()
    (model / "sub" / "config.json").write_text(SECRET)
    (tmp_path / "named").symlink_to(model, target_is_directory=True)  # the folder the user names may be a link
    assert main(["push", str(tmp_path / "named"), "--repo-id", "alice/x"]) == 0
    assert fake_hub.calls == ["create_repo", "upload_folder"]
    expected = {p.name for p in pruned.iterdir() if p.name != "membership_split.json"} | {"README.md"}
    assert set(fake_hub.uploaded) == expected
    assert all(fake_hub.uploaded[name] == (pruned / name).read_bytes() for name in expected - {"README.md"})
    assert not [name for name, data in fake_hub.uploaded.items() if SECRET.encode() in data]
    assert "not uploading evil.py, id_rsa, notes.txt, pytorch_model.bin, sub" in caplog.text


# --------------------------------------------------------------------------------------- 3. untrusted code
EVIL_CODE = """
from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PretrainedConfig, PreTrainedModel
class EvilConfig(PretrainedConfig):
    model_type = "evilmodel"
class EvilModel(PreTrainedModel):
    config_class = EvilConfig
"""


def _evil_folder(pruned: Path, root: Path, model_type: str, where: str) -> tuple[Path, Path]:
    """A copy of ``pruned`` whose config (or tokenizer config) asks transformers to import ``evil.py``, which
    creates ``marker`` when imported."""
    folder = _copy(pruned, root / f"evil-{model_type}-{where}")
    marker = root / f"marker-{model_type}-{where}"
    (folder / "evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                "AutoModelForSequenceClassification": "evil.EvilModel", "AutoTokenizer": ["evil.EvilConfig", None]}
    name = "config.json" if where == "config" else "tokenizer_config.json"
    payload = json.loads((folder / name).read_text())
    payload["auto_map"] = auto_map
    if where == "config":
        payload["model_type"] = model_type
    (folder / name).write_text(json.dumps(payload))
    return folder, marker


EVIL_CASES = [("evilmodel", "config"), ("bert", "config"), ("bert", "tokenizer")]


@pytest.mark.parametrize(("model_type", "where"), EVIL_CASES)
@pytest.mark.parametrize("loader", ["load_pruned", "load_model_dir", "load_model_for_task", "load_tokenizer",
                                    "check_model_source"])
def test_a_model_declaring_its_own_code_is_refused_without_running_it(pruned, tmp_path, model_type, where, loader):
    folder, marker = _evil_folder(pruned, tmp_path, model_type, where)
    with pytest.raises(HfpruneError) as error:
        model_loaders()[loader](folder)
    message = str(error.value)
    assert "\n" not in message and not marker.exists()
    if model_type == "evilmodel":  # the unknown type or the custom code: whichever is read first, both refused
        assert "model_type 'evilmodel'" in message or "'auto_map'" in message
    else:
        assert message.endswith("declares 'auto_map' (Python code shipped with the model); hfprune never runs a "
                                "model's own code: expected a config of a transformers architecture without it")
        assert f"{folder / ('config.json' if where == 'config' else 'tokenizer_config.json')}" in message


PTY_CHILD = """
import sys
from helpers_security import model_loaders
from hfprune.errors import HfpruneError
for name, load in model_loaders().items():
    try:
        load(sys.argv[1])
        print(name, "LOADED", flush=True)
    except HfpruneError as exc:
        print(name, "REFUSED", len(str(exc).splitlines()), flush=True)
"""


def _run_on_a_terminal(argv: list[str], timeout: float = 240.0) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr, answering "y" to any question; returns (exit
    code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty
        os.environ.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), OMP_NUM_THREADS="1")
        os.execv(argv[0], argv)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if b"[y/N]" in chunk or b"custom code" in chunk:
                    os.write(fd, b"y\n")
            else:
                os.write(fd, b"y\n")  # "y" typed ahead too, whether or not a question shows
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@pytest.mark.parametrize(("model_type", "where"), EVIL_CASES[:2])
def test_custom_code_never_runs_with_a_terminal_answering_yes(pruned, tmp_path, model_type, where):
    folder, marker = _evil_folder(pruned, tmp_path, model_type, where)
    code, output = _run_on_a_terminal([sys.executable, "-c", PTY_CHILD, str(folder)])
    assert code == 0, output
    results = [line.split() for line in output.splitlines() if line.split()[1:2] in (["REFUSED"], ["LOADED"])]
    assert results == [[name, "REFUSED", "1"] for name in model_loaders()], output
    assert "custom code" not in output and not marker.exists()

    hfprune = str(Path(sys.executable).with_name("hfprune"))
    code, output = _run_on_a_terminal([hfprune, "audit", str(folder), "--data", "glue/sst2", "--privacy", "none",
                                       "--robustness", "deepwordbug", "--out", str(tmp_path / "audit")])
    errors = [line for line in output.splitlines() if "error" in line]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("hfprune audit: error: "), output
    assert not marker.exists() and not (tmp_path / "audit").exists()


def test_every_load_in_the_package_goes_through_hfprune_models():
    """Outside ``hfprune.models`` nothing calls a transformers class's ``from_pretrained`` or looks a class up by a
    name read from a file (``getattr(transformers, ...)``): one place checks before transformers reads a config."""
    import ast

    import transformers

    package = ROOT / "hfprune"
    for path in package.rglob("*.py"):
        if path.parent == package / "models":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            if node.func.attr == "from_pretrained":
                assert not name.startswith("Auto") and not hasattr(transformers, name), f"{path}:{node.lineno}"
        assert "getattr(transformers," not in path.read_text(encoding="utf-8"), path


def test_architectures_never_names_what_is_instantiated(pruned, tmp_path):
    """``architectures: ["TrainingArguments"]`` must not make hfprune call ``transformers.TrainingArguments``."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.pruning.serialization import load_pruned

    folder = _copy(pruned, tmp_path / "model")
    payload = json.loads((folder / "config.json").read_text())
    for name in ("TrainingArguments", "Trainer", "pipeline", "GPT2LMHeadModel"):
        (folder / "config.json").write_text(json.dumps({**payload, "architectures": [name]}))
        refusal = (rf"^config\.architectures: expected a bert model class \(one of \[.*'BertForSequenceClassification'"
                   rf".*\]\), got \['{name}'\]$")
        with pytest.raises(ConfigError, match=refusal):
            load_pruned(folder)
        if name == "GPT2LMHeadModel":  # named like a causal LM: the audit loader gets as far as load_pruned
            with pytest.raises(ConfigError, match=refusal):
                load_model_dir(folder)
        else:
            with pytest.raises(ConfigError, match=rf"holds a {name}; expected a sequence classifier or a causal LM"):
                load_model_dir(folder)


# ------------------------------------------------------------------------- 4. links, shard paths, structure sizes
@pytest.mark.parametrize("linked", ["plots", "dense", "pruned/audit", ".hfprune.lock"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_link_inside_a_run_folder_is_refused_and_never_followed(finished_run, tmp_path, capsys, linked, overwrite):
    root, payload = finished_run
    out = shutil.copytree(root / "OUT", tmp_path / "OUT", symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    if linked == ".hfprune.lock":
        elsewhere.write_text("precious\n")
        (out / linked).unlink(missing_ok=True)
    else:
        shutil.move(out / linked, elsewhere)  # the real folder now lives outside, reached through the link
    (out / linked).symlink_to(elsewhere)
    recipe = _recipe_file(tmp_path, {**payload, "output": {"dir": str(out)}}, "a.yaml")
    before, outside = _snapshot(out), _snapshot(tmp_path)
    line = _error_line(capsys, ["run", str(recipe), *(["--overwrite"] if overwrite else [])])
    assert line == (f"hfprune run: error: output.dir: {out / linked} is a symbolic link (to {elsewhere}); expected "
                    f"a folder written by hfprune, without links (remove {Path(linked).name})")
    assert _snapshot(out) == before and _snapshot(tmp_path) == outside  # nothing written, moved or deleted


@pytest.mark.parametrize("command", ["audit", "finetune"])
def test_overwrite_through_a_linked_output_folder_is_a_clear_error(finished_run, tmp_path, capsys, command):
    """No ``Cannot call rmtree on a symbolic link``: the link is refused before anything is computed."""
    root, _ = finished_run
    target = tmp_path / "real"
    target.mkdir()
    (target / "audit.json").write_text("{}")
    (target / "config.json").write_text("{}")
    (tmp_path / "out").symlink_to(target, target_is_directory=True)
    argv = {"audit": ["audit", str(root / "OUT/pruned/model"), "--data", "glue/sst2", "--privacy", "mia",
                      "--robustness", "none", "--split-from", str(root / "OUT/dense/model"), "--out"],
            "finetune": ["finetune", "--model", str(root / "dense"), "--train-samples", "8", "--output-dir"]}[command]
    before = _snapshot(tmp_path)
    line = _error_line(capsys, [*argv, str(tmp_path / "out"), "--overwrite"])
    key = "--out" if command == "audit" else "output_dir"
    assert line.startswith(f"hfprune {command}: error: {key}: {tmp_path / 'out'} is a symbolic link (to {target}); "
                           "expected a folder, not a link")
    assert _snapshot(tmp_path) == before


def test_replace_folder_never_follows_a_link(tmp_path):
    from hfprune.utils.io import replace_folder

    (tmp_path / "staging").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep").write_text("x")
    (tmp_path / "target").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"^output folder: .*target is a symbolic link \(to .*real\); expected a "
                       r"folder to replace, not a link"):
        replace_folder(tmp_path / "staging", tmp_path / "target")
    assert (tmp_path / "real" / "keep").read_text() == "x" and (tmp_path / "staging").is_dir()


def _shard(pruned: Path, folder: Path, outside_name: str | None) -> Path:
    """``pruned`` re-saved as two safetensors shards plus an index; ``outside_name`` replaces one shard's name."""
    from safetensors.torch import load_file, save_file

    model = _copy(pruned, folder)
    state = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    names = sorted(state)
    half = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
            "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, keys in half.items():
        save_file({k: state[k].contiguous() for k in keys}, model / file)
    weight_map = {k: file for file, keys in half.items() for k in keys}
    if outside_name is not None:
        weight_map = {k: outside_name if v.startswith("model-00002") else v for k, v in weight_map.items()}
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return model


@pytest.mark.parametrize("outside", ["../other/model.safetensors", "/etc/passwd", "link/model.safetensors"])
def test_shard_paths_of_a_weights_index_stay_inside_the_model_folder(pruned, tmp_path, outside):
    from hfprune.models import load_model_for_task
    from hfprune.pruning.serialization import load_pruned

    (tmp_path / "other").mkdir()
    shutil.copy(pruned / "model.safetensors", tmp_path / "other" / "model.safetensors")
    model = _shard(pruned, tmp_path / "model", outside)
    (model / "link").symlink_to(tmp_path / "other", target_is_directory=True)
    for load in (load_pruned, load_model_for_task):
        with pytest.raises(ConfigError, match=rf"^{model / 'model.safetensors.index.json'} weight_map: "
                           r"(expected a relative path inside|'link/model\.safetensors' resolves to)") as error:
            load(model)
        assert "\n" not in str(error.value)


def test_shard_names_of_a_hub_download_are_checked_by_name_only(tmp_path):
    """The HF cache links each snapshot file to its blob store: names are checked, links are the cache's own."""
    from hfprune.models.trusted import index_shards

    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "abc").write_bytes(b"")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "model-1.safetensors").symlink_to(tmp_path / "blobs" / "abc")
    index = snapshot / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    assert index_shards(index, local=False) == ["model-1.safetensors"]
    with pytest.raises(ConfigError, match=r"weight_map: 'model-1\.safetensors' resolves to .*blobs/abc, outside"):
        index_shards(index)
    for name in ("../x.safetensors", "/etc/passwd", ""):
        index.write_text(json.dumps({"weight_map": {"a": name}}))
        with pytest.raises(ConfigError, match=rf"weight_map: expected a relative path inside the repository without "
                           rf"'\.\.', got {re.escape(repr(name))}$"):
            index_shards(index, local=False)


def test_a_sharded_pruned_model_inside_its_folder_loads_with_equal_logits(pruned, tmp_path):
    from hfprune.pruning.serialization import load_pruned

    inputs = {"input_ids": torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])}
    with torch.no_grad():
        expected = load_pruned(pruned)(**inputs).logits
        got = load_pruned(_shard(pruned, tmp_path / "model", None))(**inputs).logits
    assert torch.equal(got, expected)


STRUCTURE_CASES = [
    # the fixture keeps 24 neurons in every layer, so config.json holds the kept width and the dense one is bounded
    ({"dense_ffn_size": 3e8}, r"dense_ffn_size: expected an integer, got float 300000000\.0"),
    ({"dense_ffn_size": 2_000_000_000}, r"dense_ffn_size: expected 24 \(intermediate_size of config\.json\) or, as "
                                        r"every layer keeps 24, an integer in \[24, 512\], got 2000000000"),
    ({"dense_num_heads": 8}, r"dense_num_heads: expected 4 \(num_attention_heads of config\.json\), got 8"),
    ({"model_type": "gpt2"}, r"model_type: expected 'bert' \(model_type of config\.json\), got 'gpt2'"),
    ({"kept_heads": [[0, 1]]}, r"kept_heads: expected one list per layer \(2, num_hidden_layers of config\.json\), "
                               r"got 1"),
]


@pytest.mark.parametrize(("change", "message"), STRUCTURE_CASES)
def test_a_tampered_structure_is_refused_before_anything_is_built(pruned, tmp_path, monkeypatch, change, message):
    import transformers

    from hfprune.pruning.serialization import load_pruned

    model = _copy(pruned, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["hfprune_structure"].update(change)
    (model / "config.json").write_text(json.dumps(config))
    built = []
    monkeypatch.setattr(transformers.BertForSequenceClassification, "__init__",
                        lambda self, *args, **kwargs: built.append(args))
    with pytest.raises(ConfigError, match=rf"^hfprune_structure\.{message}$"):
        load_pruned(model)
    assert built == []


def test_sizes_the_weights_contradict_are_refused_before_allocating(pruned, tmp_path):
    """Config and structure tampered consistently (FFN 48 -> 300,000,000 wide, 1.2 GB per matrix densely): the
    model is built only as wide as the kept neurons; a kept count the weights contradict is refused from the
    safetensors headers. Peak memory is measured in a fresh process."""
    model = _copy(pruned, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["intermediate_size"] = config["hfprune_structure"]["dense_ffn_size"] = 300_000_000
    (model / "config.json").write_text(json.dumps(config))
    child = ("import resource, sys, torch; from hfprune.pruning.serialization import load_pruned; "
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; m = load_pruned(sys.argv[1]); "
             "print(m.config.intermediate_size, sum(p.numel() for p in m.parameters()), "
             "(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    result = subprocess.run([sys.executable, "-c", child, str(model)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    ffn, params, grown_mb = map(int, result.stdout.split())
    from hfprune.pruning.serialization import load_pruned

    assert ffn == 300_000_000 and params == sum(p.numel() for p in load_pruned(pruned).parameters())
    assert grown_mb < 200  # a dense FFN of that width would need 2 x 2 x 1.2 GB

    kept = config["hfprune_structure"]["kept_neurons"]
    config["hfprune_structure"]["kept_neurons"] = [kept[0] + [47], kept[1]] if 47 not in kept[0] else kept
    config["intermediate_size"] = config["hfprune_structure"]["dense_ffn_size"] = 48
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(HfpruneError, match=r"^load_pruned: .*: hfprune_structure and config\.json give "
                       r"bert\.encoder\.layer\.0\.intermediate\.dense\.weight the shape \[25, 32\], its safetensors "
                       r"weights \[24, 32\]; expected them to agree$"):
        load_pruned(model)
