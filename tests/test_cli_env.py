"""``hfprune --help`` and ``hfprune env``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from hfprune.cli.main import main


def test_help_exits_zero_and_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "env" in out and "finetune" in out


def test_console_help_runs_as_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "hfprune.cli.main", "finetune", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--overwrite" in result.stdout and "--train-samples" in result.stdout


def _env_json(capsys) -> dict:
    assert main(["env", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_env_json_reports_versions_data_dir_and_default_model(capsys):
    import torch
    import transformers

    report = _env_json(capsys)
    assert report["versions"]["torch"] == torch.__version__
    assert report["versions"]["transformers"] == transformers.__version__
    assert report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(report["data_dir"]) == {"path", "exists", "source"}
    assert "glue/sst2" in report["local_datasets"]
    assert report["default_model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert report["offline_models"]["HuggingFaceTB/SmolLM2-135M-Instruct"]["aliases"][0] == "smollm2"


def test_env_json_lists_recipes_with_deepwordbug_runnable_and_textfooler_missing(capsys, tmp_path, monkeypatch):
    from hfprune.data import nltk_data_dir

    if nltk_data_dir() is None or importlib.util.find_spec("textattack") is None:
        pytest.skip("needs textattack installed and the local nltk_data (stopwords) for DeepWordBug")
    monkeypatch.setenv("TA_CACHE_DIR", str(tmp_path / "ta-cache"))  # an empty cache: no word embeddings
    recipes = _env_json(capsys)["recipes"]
    assert {"DeepWordBugGao2018", "Pruthi2019", "PWWSRen2019", "TextFoolerJin2019", "BAEGarg2019",
            "CheckList2020"} <= set(recipes)
    assert recipes["DeepWordBugGao2018"] == {"runnable": True, "missing": None}
    assert recipes["TextFoolerJin2019"]["runnable"] is False
    assert "counter-fitted word embeddings" in recipes["TextFoolerJin2019"]["missing"]
    assert str(tmp_path / "ta-cache") in recipes["TextFoolerJin2019"]["missing"]


def test_env_text_output(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "TextAttack recipes:" in out and "default model: sentence-transformers/all-MiniLM-L6-v2" in out
    assert "data dir:" in out
