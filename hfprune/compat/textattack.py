"""Importing TextAttack 0.3.11 next to transformers 5, and telling which of its recipes can run offline.

``import_textattack`` prepares what textattack's import needs (NLTK data, a flair stand-in) and undoes the
environment changes it makes (``TA_CACHE_DIR`` rewrites ``HF_HOME``/``XDG_CACHE_HOME``, it forces
``TOKENIZERS_PARALLELISM`` and its logging setup disables existing loggers). ``recipe_status`` checks each recipe's
resources on disk without importing textattack (8 s, 660 MB) and without network calls.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hfprune.compat.flair_standin import STANDIN_MARKER, build_modules
from hfprune.data.paths import nltk_data_dir
from hfprune.errors import HfpruneError
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

# variables textattack's import overwrites, restored afterwards
PROTECTED_ENV = ("HF_HOME", "XDG_CACHE_HOME", "TOKENIZERS_PARALLELISM")

TEXTATTACK_INSTALL_HINT = "pip install --no-deps textattack==0.3.11 plus hfprune's 'audit' extra"


class TextAttackUnavailableError(HfpruneError, ImportError):
    """textattack (or what its import needs, such as NLTK stopwords) is missing."""


def is_flair_standin(module: ModuleType | None) -> bool:
    """True when ``module`` is hfprune's flair stand-in rather than the real package."""
    return bool(getattr(module, STANDIN_MARKER, False))


def register_flair_standin() -> bool:
    """Put the flair stand-in into ``sys.modules`` unless a flair (real or stand-in) can be imported.

    Returns True when the stand-in was registered by this call. A real flair that is installed but fails to import
    (flair >= 0.12 wants transformers < 5) is replaced by the stand-in, with a warning.
    """
    if sys.modules.get("flair") is not None:
        return False
    if importlib.util.find_spec("flair") is not None:
        try:
            importlib.import_module("flair")
            return False
        except Exception as exc:  # a broken flair install raises anything from ImportError to version checks
            logger.warning("flair is installed but does not import (%s: %s); using hfprune's stand-in",
                           type(exc).__name__, exc)
            for name in [n for n in sys.modules if n == "flair" or n.startswith("flair.")]:
                del sys.modules[name]
    sys.modules.update(build_modules())
    logger.debug("registered hfprune's flair stand-in (flair taggers unavailable)")
    return True


def point_nltk_at_local_data() -> Path | None:
    """Set ``NLTK_DATA`` to ``<data dir>/nltk_data`` when unset and that folder exists; returns the folder used.

    When nltk is already imported its search path was fixed at import, so the folder is added to it as well.
    """
    if os.environ.get("NLTK_DATA"):
        return None
    local = nltk_data_dir()
    if local is None:
        return None
    os.environ["NLTK_DATA"] = str(local)
    nltk = sys.modules.get("nltk")
    if nltk is not None and str(local) not in nltk.data.path:
        nltk.data.path.insert(0, str(local))
    logger.debug("NLTK_DATA=%s", local)
    return local


# NLTK packages textattack asks ``nltk.download`` for that hfprune's attacks never read: WordSwapWordNet (PWWS)
# downloads the Open Multilingual WordNet on every construction, for non-English lookups; English ("eng", the only
# language hfprune attacks in) is served by WordNet alone.
UNUSED_NLTK_PACKAGES = frozenset({"omw-1.4", "omw"})
# NLTK data folders a downloaded package id unpacks into
_NLTK_CATEGORIES = ("corpora", "taggers", "tokenizers", "chunkers", "grammars", "misc", "models", "sentiment",
                    "stemmers", "help")


def nltk_package_present(package: str) -> bool:
    """Whether NLTK package ``package`` (a downloader id such as "wordnet") is on NLTK's search path, unpacked or
    zipped, so that no download is needed."""
    import nltk

    for category in _NLTK_CATEGORIES:
        for name in (package, f"{package}.zip"):
            try:
                nltk.data.find(f"{category}/{name}", paths=nltk_search_paths())
                return True
            except (LookupError, OSError, ValueError):
                continue
    return False


@contextmanager
def local_nltk_downloads() -> Iterator[None]:
    """While active, ``nltk.download(package)`` reaches the network only for a package that is neither present
    locally nor in ``UNUSED_NLTK_PACKAGES``: textattack calls it while building attacks although the data is local
    (an offline machine then prints ``[nltk_data] Error loading omw-1.4: <urlopen error ...>`` on every PWWS run)."""
    import nltk

    download = nltk.download

    def local_first(info_or_id: object = None, *args: object, **kwargs: object) -> bool:
        if isinstance(info_or_id, str) and (info_or_id in UNUSED_NLTK_PACKAGES or nltk_package_present(info_or_id)):
            logger.debug("nltk.download(%r) skipped: %s", info_or_id,
                         "not used by English attacks" if info_or_id in UNUSED_NLTK_PACKAGES else "present locally")
            return True
        return download(info_or_id, *args, **kwargs)

    nltk.download = local_first
    try:
        yield
    finally:
        nltk.download = download


def import_textattack() -> ModuleType:
    """Import and return ``textattack``, working around what stops or misbehaves in it offline with transformers 5.

    Raises TextAttackUnavailableError naming what is missing when textattack or the NLTK data it needs is absent.
    """
    if "textattack" in sys.modules:
        return sys.modules["textattack"]
    point_nltk_at_local_data()
    register_flair_standin()
    # fix the HF libraries' cache locations before textattack rewrites HF_HOME (they read it once, on import)
    import datasets  # noqa: F401
    import huggingface_hub  # noqa: F401
    import transformers  # noqa: F401

    saved_env = {name: os.environ.get(name) for name in PROTECTED_ENV}
    saved_loggers = {
        name: log.disabled for name, log in logging.root.manager.loggerDict.items() if isinstance(log, logging.Logger)
    }
    try:
        return importlib.import_module("textattack")
    except (ImportError, LookupError) as exc:
        raise TextAttackUnavailableError(
            f"textattack cannot be imported ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}). "
            f"It needs {TEXTATTACK_INSTALL_HINT}, and NLTK English stopwords on NLTK_DATA "
            f"(now {os.environ.get('NLTK_DATA') or '<unset>'})."
        ) from exc
    finally:
        _restore_env(saved_env)
        for name, disabled in saved_loggers.items():
            logging.getLogger(name).disabled = disabled


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# --- which recipes can run here -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """A resource a recipe needs; ``missing()`` returns None when present, else what is missing, in words."""

    label: str
    probe: Callable[[], str | None]

    def missing(self) -> str | None:
        return self.probe()


def _python_package(module: str, hint: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        return None if importlib.util.find_spec(module) is not None else f"{module} is not installed ({hint})"

    return probe


def nltk_search_paths() -> list[str]:
    """The folders NLTK would search after ``import_textattack``: NLTK_DATA (or the local copy), then its defaults."""
    import nltk

    from_env = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    local = nltk_data_dir()
    extra = from_env or ([str(local)] if local else [])
    return list(dict.fromkeys([*extra, *nltk.data.path]))


def _nltk_resource(resource: str, label: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        if importlib.util.find_spec("nltk") is None:
            return f"{label} (nltk is not installed)"
        import nltk

        try:
            nltk.data.find(resource, paths=nltk_search_paths())
        except (LookupError, OSError, ValueError):
            return f"{label} (NLTK resource {resource!r} not found)"
        return None

    return probe


def textattack_cache_dir() -> Path:
    """TextAttack's download cache: ``$TA_CACHE_DIR``, else ``~/.cache/textattack`` (as textattack computes it)."""
    return Path(os.environ.get("TA_CACHE_DIR") or os.path.expanduser("~/.cache/textattack"))


def _textattack_cached(relative: str, label: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        path = textattack_cache_dir() / relative
        return None if path.exists() else f"{label} (not in TextAttack's cache: {path}; downloaded from S3)"

    return probe


def tfhub_cache_dir() -> Path:
    """Where tensorflow_hub caches modules once textattack is imported (it sets TFHUB_CACHE_DIR to TA_CACHE_DIR)."""
    configured = os.environ.get("TFHUB_CACHE_DIR") or os.environ.get("TA_CACHE_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "tfhub_modules"


def _tfhub_module(url: str, label: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        for package in ("tensorflow", "tensorflow_hub"):
            if importlib.util.find_spec(package) is None:
                return f"{label} ({package} is not installed; TF Hub {url})"
        module_dir = tfhub_cache_dir() / hashlib.sha1(url.encode("utf-8")).hexdigest()
        if not (module_dir / "saved_model.pb").is_file():
            return f"{label} (TF Hub {url} not cached in {module_dir})"
        return None

    return probe


def _hub_model_cached(repo_id: str, label: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(repo_id, "config.json")
        weights = [try_to_load_from_cache(repo_id, f) for f in ("model.safetensors", "pytorch_model.bin")]
        if isinstance(config, str) and any(isinstance(w, str) for w in weights):
            return None
        return f"{label} (Hub model {repo_id!r} is not in the local HF cache)"

    return probe


def real_flair_available() -> bool:
    """True when the real flair package is imported or installed (the stand-in does not count)."""
    module = sys.modules.get("flair")
    if module is not None:
        return not is_flair_standin(module)
    try:
        return importlib.util.find_spec("flair") is not None
    except ValueError:  # a module without __spec__ in sys.modules
        return False


def _flair_model(model: str, repo_id: str, label: str, note: str = "") -> Callable[[], str | None]:
    """A flair tagger: needs the real flair package and the model in the HF cache (flair >= 0.12 loads from there)."""

    def probe() -> str | None:
        if not real_flair_available():
            return f"{label} (flair is not installed){note}"
        missing = _hub_model_cached(repo_id, f"{label} {model!r}")()
        return f"{missing}{note}" if missing else None

    return probe


TEXTATTACK = Requirement("textattack", _python_package("textattack", TEXTATTACK_INSTALL_HINT))
STOPWORDS = Requirement("NLTK stopwords", _nltk_resource("corpora/stopwords", "NLTK English stopwords"))
WORDNET = Requirement("NLTK WordNet", _nltk_resource("corpora/wordnet", "NLTK WordNet 3.0"))
POS_TAGGER = Requirement("NLTK POS tagger", _nltk_resource(
    "taggers/averaged_perceptron_tagger_eng/", "NLTK POS tagger averaged_perceptron_tagger_eng"))
UNIVERSAL_TAGSET = Requirement("NLTK universal tagset", _nltk_resource(
    "taggers/universal_tagset/", "NLTK universal_tagset mapping"))
EMBEDDINGS = Requirement("counter-fitted embeddings", _textattack_cached(
    "word_embeddings/paragramcf", "counter-fitted word embeddings"))
USE = Requirement("Universal Sentence Encoder", _tfhub_module(
    "https://tfhub.dev/google/universal-sentence-encoder/3", "Universal Sentence Encoder"))
BERT_MLM = Requirement("bert-base-uncased", _hub_model_cached("bert-base-uncased", "bert-base-uncased masked LM"))
FLAIR_NER = Requirement("flair NER", _flair_model(
    "ner", "flair/ner-english", "flair NER tagger",
    "; the name/location swaps need it, the contraction/extension/number swaps would run"))

# recipe (textattack.attack_recipes class name) -> what it needs; importing textattack needs NLTK stopwords
RECIPE_REQUIREMENTS: dict[str, tuple[Requirement, ...]] = {
    "DeepWordBugGao2018": (TEXTATTACK, STOPWORDS),
    "Pruthi2019": (TEXTATTACK, STOPWORDS),
    "PWWSRen2019": (TEXTATTACK, STOPWORDS, WORDNET),
    "TextFoolerJin2019": (TEXTATTACK, STOPWORDS, EMBEDDINGS, POS_TAGGER, UNIVERSAL_TAGSET, USE),
    "BAEGarg2019": (TEXTATTACK, STOPWORDS, BERT_MLM, POS_TAGGER, UNIVERSAL_TAGSET, USE),
    "CheckList2020": (TEXTATTACK, STOPWORDS, FLAIR_NER),
}


def recipe_status() -> dict[str, tuple[bool, str | None]]:
    """Recipe name -> (runnable here, what is missing or None), from the resources on disk; no network calls."""
    status: dict[str, tuple[bool, str | None]] = {}
    for recipe, requirements in RECIPE_REQUIREMENTS.items():
        missing = [m for m in (r.missing() for r in requirements) if m]
        status[recipe] = (not missing, "; ".join(missing) or None)
    return status
