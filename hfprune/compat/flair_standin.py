"""A minimal stand-in for ``flair``, registered only when the real package cannot be imported.

``import textattack`` imports flair eagerly (``flair.device``, ``flair.data.Sentence``, ``flair.data.Tokenizer``,
``flair.models.SequenceTagger``) but needs it only for flair POS/NER taggers, and no flair release installs next to
transformers 5. The stand-in lets textattack import; any attempt to use a tagger raises FlairNotInstalledError.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from typing import Any

from hfprune.errors import HfpruneError

# attribute set on every stand-in module, so callers can tell it from the real flair
STANDIN_MARKER = "__hfprune_flair_standin__"


class FlairNotInstalledError(HfpruneError, ImportError):
    """A flair model (POS or NER tagger) was needed, but only hfprune's stand-in for flair is present."""


def _missing(what: str) -> FlairNotInstalledError:
    return FlairNotInstalledError(
        f"{what} needs the flair package, which is not installed (hfprune registered a stand-in so that textattack "
        "imports). Use a recipe without flair taggers (e.g. the NLTK POS tagger), or install flair where its "
        "dependencies allow it."
    )


class Token:
    """One token of a Sentence: its text and 1-based position, as in flair."""

    def __init__(self, text: str, idx: int) -> None:
        self.text = text
        self.idx = idx

    def __repr__(self) -> str:
        return f"Token[{self.idx}]: {self.text!r}"


class Tokenizer:
    """Base class of flair tokenizers: subclasses implement ``tokenize(text) -> list[str]``."""

    def tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


class Sentence:
    """Text split into tokens (by ``use_tokenizer`` when it is a Tokenizer, else on whitespace); never tagged."""

    def __init__(self, text: str | list[str], use_tokenizer: Any = True, **kwargs: Any) -> None:
        if isinstance(text, list):
            words = list(text)
        elif isinstance(use_tokenizer, Tokenizer):
            words = use_tokenizer.tokenize(text)
        else:
            words = text.split()
        self.tokens = [Token(word, position) for position, word in enumerate(words, start=1)]

    def __len__(self) -> int:
        return len(self.tokens)

    def __iter__(self) -> Iterator[Token]:
        return iter(self.tokens)

    def to_plain_string(self) -> str:
        return " ".join(token.text for token in self.tokens)

    def get_labels(self, label_type: str | None = None) -> list[Any]:
        raise _missing("reading flair labels")

    def __repr__(self) -> str:
        return f"Sentence[{len(self)}]: {self.to_plain_string()!r}"


class SequenceTagger:
    """flair's tagger class: loading or constructing one raises FlairNotInstalledError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _missing("a flair SequenceTagger")

    @classmethod
    def load(cls, model_name: str, *args: Any, **kwargs: Any) -> SequenceTagger:
        raise _missing(f"the flair tagger {model_name!r}")


def build_modules() -> dict[str, types.ModuleType]:
    """The ``flair``, ``flair.data`` and ``flair.models`` modules of the stand-in, keyed as in ``sys.modules``."""
    import torch

    root = types.ModuleType("flair", "hfprune stand-in for flair (not installed)")
    data = types.ModuleType("flair.data", "hfprune stand-in for flair.data")
    models = types.ModuleType("flair.models", "hfprune stand-in for flair.models")
    root.__path__ = []  # a package, so that ``import flair.data`` resolves through sys.modules
    root.__version__ = "0+hfprune.standin"
    root.device = torch.device("cpu")
    root.data, root.models = data, models
    data.Sentence, data.Token, data.Tokenizer = Sentence, Token, Tokenizer
    models.SequenceTagger = SequenceTagger
    for module in (root, data, models):
        setattr(module, STANDIN_MARKER, True)
        module.__spec__ = ModuleSpec(module.__name__, None, origin="hfprune flair stand-in", is_package=module is root)
    return {"flair": root, "flair.data": data, "flair.models": models}
