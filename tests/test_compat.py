"""The TextAttack shim: flair stand-in registration, NLTK data, environment protection, recipe status."""

from __future__ import annotations

import importlib
import logging
import logging.config
import os
import sys
import types

import pytest

from hfprune.compat import flair_standin
from hfprune.compat import textattack as compat


@pytest.fixture
def nltk_env_restored(monkeypatch):
    """Undo, after the test, the NLTK_DATA value (and NLTK search path) that import_textattack may set."""
    nltk = pytest.importorskip("nltk")
    previous = os.environ.get("NLTK_DATA")
    monkeypatch.setenv("NLTK_DATA", previous or "")
    if previous is None:
        monkeypatch.delenv("NLTK_DATA")
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))


@pytest.fixture
def no_flair(monkeypatch):
    """A process where ``import flair`` fails (as when flair is not installed), restored afterwards."""
    for name in ("flair", "flair.data", "flair.models"):
        monkeypatch.setitem(sys.modules, name, None)


def test_standin_is_registered_when_flair_is_absent(no_flair):
    assert compat.register_flair_standin() is True
    import flair
    from flair.data import Sentence, Tokenizer
    from flair.models import SequenceTagger

    assert compat.is_flair_standin(flair) and str(flair.device) == "cpu"

    class Words(Tokenizer):
        def tokenize(self, text):
            return text.lower().split()

    sentence = Sentence("Hello Big World", use_tokenizer=Words())
    assert [token.text for token in sentence] == ["hello", "big", "world"]
    with pytest.raises(flair_standin.FlairNotInstalledError, match="'upos-fast' needs the flair package"):
        SequenceTagger.load("upos-fast")
    assert compat.register_flair_standin() is False  # already there: not registered twice


def test_real_flair_is_left_alone(monkeypatch):
    real = types.ModuleType("flair")
    monkeypatch.setitem(sys.modules, "flair", real)
    assert compat.register_flair_standin() is False
    assert sys.modules["flair"] is real


def test_broken_flair_install_is_replaced_by_the_standin(no_flair, monkeypatch):
    original_find_spec, original_import = importlib.util.find_spec, importlib.import_module
    monkeypatch.delitem(sys.modules, "flair")
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "flair" else original_find_spec(name, *a))

    def failing_import(name, *args):
        if name == "flair":
            raise RuntimeError("flair needs transformers<5")
        return original_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", failing_import)
    assert compat.register_flair_standin() is True
    assert compat.is_flair_standin(sys.modules["flair"])


def test_nltk_data_points_at_local_copy_only_when_unset(tmp_path, monkeypatch):
    import nltk

    (tmp_path / "nltk_data").mkdir()
    monkeypatch.setenv("HFPRUNE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NLTK_DATA", "")  # recorded, so that the value the shim sets is undone after the test
    monkeypatch.delenv("NLTK_DATA")
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    assert compat.point_nltk_at_local_data() == tmp_path / "nltk_data"
    assert os.environ["NLTK_DATA"] == str(tmp_path / "nltk_data")
    assert nltk.data.path[0] == str(tmp_path / "nltk_data")  # nltk was imported already: its path is updated too
    monkeypatch.setenv("NLTK_DATA", "/elsewhere")
    assert compat.point_nltk_at_local_data() is None
    assert os.environ["NLTK_DATA"] == "/elsewhere"


def test_import_restores_environment_and_loggers(monkeypatch, nltk_env_restored):
    """What textattack's import does to the process (rewrite HF_HOME etc., disable loggers) is undone."""
    monkeypatch.delitem(sys.modules, "textattack", raising=False)
    monkeypatch.setenv("HF_HOME", "/my/hf")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for name in ("flair", "flair.data", "flair.models"):  # whatever the shim registers is undone afterwards
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name))
    ours = logging.getLogger("hfprune.test_compat")
    fake = types.ModuleType("textattack")
    original_import = importlib.import_module

    def fake_import(name, *args):
        if name != "textattack":
            return original_import(name, *args)
        os.environ.update(HF_HOME="/ta/cache", XDG_CACHE_HOME="/ta/cache")
        logging.config.dictConfig({"version": 1})  # disables every existing logger, as textattack's import does
        return fake

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert compat.import_textattack() is fake
    assert os.environ["HF_HOME"] == "/my/hf" and "XDG_CACHE_HOME" not in os.environ
    assert ours.disabled is False


def test_recipe_status_names_missing_resources(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setenv("TA_CACHE_DIR", str(tmp_path / "ta"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    monkeypatch.setenv("HFPRUNE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "no-nltk"))
    monkeypatch.setattr(nltk.data, "path", [])
    status = compat.recipe_status()
    assert set(compat.RECIPE_REQUIREMENTS) <= set(status)
    runnable, missing = status["DeepWordBugGao2018"]
    assert runnable is False and "NLTK English stopwords" in missing
    runnable, missing = status["TextFoolerJin2019"]
    assert runnable is False
    assert f"counter-fitted word embeddings (not in TextAttack's cache: {tmp_path / 'ta'}" in missing
    assert "Universal Sentence Encoder" in missing


def test_recipe_status_with_shared_nltk_data():
    from hfprune.data import nltk_data_dir

    if nltk_data_dir() is None or importlib.util.find_spec("textattack") is None:
        pytest.skip("needs textattack and the local nltk_data")
    status = compat.recipe_status()
    assert status["DeepWordBugGao2018"] == (True, None)
    assert status["PWWSRen2019"] == (True, None)
    if not compat.real_flair_available():
        runnable, missing = status["CheckList2020"]
        assert runnable is False and missing.startswith("flair NER tagger (flair is not installed)")


@pytest.mark.audit
def test_real_textattack_import(tmp_path, monkeypatch, nltk_env_restored):
    """The real import (about 10 s, 660 MB): flair stand-in used when flair is absent, HF_HOME untouched."""
    if importlib.util.find_spec("textattack") is None:
        pytest.skip("textattack is not installed")
    monkeypatch.setenv("TA_CACHE_DIR", str(tmp_path / "ta"))
    monkeypatch.setenv("HF_HOME", "/my/hf")
    textattack = compat.import_textattack()
    from textattack.attack_recipes import DeepWordBugGao2018

    assert DeepWordBugGao2018.__name__ == "DeepWordBugGao2018"
    assert compat.is_flair_standin(sys.modules["flair"]) is not compat.real_flair_available()
    assert os.environ["HF_HOME"] == "/my/hf"
    assert textattack.shared.AttackedText("a b c").words == ["a", "b", "c"]


@pytest.mark.audit
def test_pwws_builds_without_any_nltk_download_attempt(monkeypatch, nltk_env_restored):
    """TextAttack's WordSwapWordNet calls nltk.download("omw-1.4") on every construction, which offline prints an
    urlopen error on every PWWS run; through hfprune's recipe builder no download is attempted (WordNet is local,
    omw-1.4 serves only non-English lookups)."""
    import nltk

    from hfprune.audit.robustness.recipes import RECIPES

    textattack = compat.import_textattack()
    compat.point_nltk_at_local_data()  # earlier tests may have reset NLTK's search path after textattack's import
    if RECIPES["pwws"].requirements and any(r.missing() for r in RECIPES["pwws"].requirements):
        pytest.skip("PWWS resources (NLTK WordNet) are not on this machine")
    calls = []
    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: calls.append(args) or False)
    textattack.transformations.WordSwapWordNet()
    assert calls == [("omw-1.4",)]  # textattack on its own asks for the download
    calls.clear()
    class Constant(textattack.models.wrappers.ModelWrapper):
        model = None

        def __call__(self, texts):
            return [[0.5, 0.5] for _ in texts]

    attack = RECIPES["pwws"].build(Constant())
    assert type(attack.transformation).__name__ == "WordSwapWordNet"
    assert calls == []
    assert nltk.download.__name__ == "<lambda>"  # the patch is gone after the build
    with compat.local_nltk_downloads():
        nltk.download("some-package-not-here")  # what is neither local nor known unused still downloads
    assert calls == [("some-package-not-here",)]
