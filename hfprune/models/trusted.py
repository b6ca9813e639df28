"""Reading a model's ``config.json`` without running code shipped with it.

transformers imports Python files named by a config's ``auto_map`` (and, on a terminal, asks "Do you wish to run the
custom code?"), and ``architectures`` names an arbitrary attribute of the ``transformers`` module. hfprune reads the
JSON itself first: a config declaring custom code, or a ``model_type`` outside hfprune's architecture table, is
refused with one line before transformers sees the file; the config object is built from transformers' own class for
that ``model_type``, and the model class is one transformers registers for that ``model_type``. Every load passes
``trust_remote_code=False`` as well, so a file changed between the check and the load still runs nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError, UnsupportedModelError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

CONFIG_NAME = "config.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
# keys with which a config makes transformers import code from the model's folder or repository
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")



def require_supported(key: str, where: str, model_type: Any) -> None:
    """``model_type`` is in the architecture table, else UnsupportedModelError naming ``key``."""
    from hfprune.pruning.architectures import ARCHITECTURES

    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(f"{key}: {where} has model_type {model_type!r}, which hfprune cannot prune; "
                                    f"expected one of {sorted(ARCHITECTURES)}")

def json_object(key: str, path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a ConfigError naming ``key`` when it is unreadable or not an object."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{key}: {path} is not readable UTF-8 JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{key}: {path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def refuse_remote_code(key: str, path: Path, payload: dict[str, Any]) -> None:
    """ConfigError naming ``key`` and ``path`` when ``payload`` asks transformers to import the model's own code."""
    found = [name for name in REMOTE_CODE_KEYS if name in payload]
    if found:
        raise ConfigError(f"{key}: {path} declares {found[0]!r} (Python code shipped with the model); hfprune never "
                          "runs a model's own code: expected a config of a transformers architecture without it")


def config_path(name_or_path: str | os.PathLike, key: str = "model", **hub_kwargs: Any) -> Path:
    """The ``config.json`` of a local model folder, or of a Hub repository (downloaded, or from the HF cache)."""
    from hfprune.models import ModelNotFoundError

    name = os.fspath(name_or_path)
    local = Path(os.path.expanduser(name))
    if local.is_dir():
        path = local / CONFIG_NAME
        if not path.is_file():
            raise ModelNotFoundError(f"{key}: {local} is not a saved model directory (no {CONFIG_NAME})")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, CONFIG_NAME, **hub_kwargs))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, bad id: all mean "cannot read it here"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise ModelNotFoundError(f"{key}: cannot load {name!r} here ({first}); without Hub access only model "
                                 "directories and the embedded minilm load") from None


def read_config_dict(name_or_path: str | os.PathLike, key: str = "model", **hub_kwargs: Any) -> dict[str, Any]:
    """The checked ``config.json`` of ``name_or_path`` as a dict: no custom code, a ``model_type`` hfprune prunes.
    A ``tokenizer_config.json`` beside a local config is checked for custom code too."""
    path = config_path(name_or_path, key, **hub_kwargs)
    payload = json_object(key, path)
    refuse_remote_code(key, path, payload)
    require_supported(key, str(path.parent), payload.get("model_type"))
    refuse_remote_code_in(path.parent, key)
    if Path(os.path.expanduser(os.fspath(name_or_path))).is_dir() and (path.parent / WEIGHTS_INDEX_NAME).is_file():
        index_shards(path.parent / WEIGHTS_INDEX_NAME)
    return payload


def index_shards(index_file: Path, local: bool = True) -> list[str]:
    """The shard file names a safetensors index maps tensors to, each a relative path that resolves inside the
    index's folder (``../../other-model/model.safetensors`` or an absolute path is a ConfigError naming it). For a
    Hub download (``local=False``) only the names are checked: the HF cache links every file to its blob store."""
    from hfprune.utils.io import contained_path

    key = f"{index_file} weight_map"
    weight_map = json_object(str(index_file), index_file).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(name, str) for name in weight_map.values()):
        raise ConfigError(f"{key}: expected a mapping of tensor names to shard file names")
    names = sorted(set(weight_map.values()))
    for name in names:
        if local:
            contained_path(index_file.parent, name, key)
        elif not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ConfigError(f"{key}: expected a relative path inside the repository without '..', got {name!r}")
    return names


def refuse_remote_code_in(folder: str | os.PathLike, key: str = "model") -> None:
    """``refuse_remote_code`` for the ``config.json`` and ``tokenizer_config.json`` a local folder holds."""
    for name in (CONFIG_NAME, TOKENIZER_CONFIG_NAME):
        path = Path(folder) / name
        if path.is_file():
            refuse_remote_code(key, path, json_object(key, path))


def safe_load_config(name_or_path: str | os.PathLike, key: str = "model", **hub_kwargs: Any) -> PretrainedConfig:
    """``read_config_dict``, then the config built by transformers' own class for its ``model_type`` (transformers
    never opens the file, and nothing from the model's folder is imported)."""
    from transformers import CONFIG_MAPPING

    payload = read_config_dict(name_or_path, key, **hub_kwargs)
    try:
        config = CONFIG_MAPPING[payload["model_type"]].from_dict(payload)
    except (TypeError, ValueError, KeyError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{key}: {name_or_path}: {CONFIG_NAME} does not describe a {payload['model_type']} "
                          f"model ({reason})") from None
    config._name_or_path = os.fspath(name_or_path)
    return config


def model_class(config: PretrainedConfig, key: str = "config.architectures") -> type[PreTrainedModel]:
    """The class named by ``config.architectures[0]``, accepted only when transformers' auto mappings register it
    for the config's ``model_type`` (``BertForSequenceClassification`` for ``bert``, never ``TrainingArguments``)."""
    import transformers
    from transformers.models.auto import modeling_auto

    require_supported(key, "the config", config.model_type)
    allowed = sorted({mapping[config.model_type] for name, mapping in vars(modeling_auto).items()
                      if name.startswith("MODEL_") and name.endswith("_MAPPING_NAMES") and isinstance(mapping, dict)
                      and isinstance(mapping.get(config.model_type), str)})
    names = getattr(config, "architectures", None) or []
    if not names or names[0] not in allowed:
        raise ConfigError(f"{key}: expected a {config.model_type} model class (one of {allowed}), got {names!r}")
    return getattr(transformers, names[0])
