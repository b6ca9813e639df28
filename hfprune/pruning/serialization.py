"""Saving and reloading pruned models.

``load_pruned`` rebuilds the exact pruned shapes from the structure in ``config.json`` and loads the safetensors
weights; ``export_dense`` zero-pads a pruned model back to its dense shapes so that plain ``transformers`` loads it
anywhere with the same predictions (a zero head or neuron contributes exactly nothing).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from huggingface_hub import hf_hub_download
from safetensors.torch import load_file
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.pruning.compaction import compact
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.structure import CONFIG_KEY, PrunedStructure
from hfprune.pruning.units import UnitKind, unit_groups
from hfprune.utils.io import atomic_write_json

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"


def save_pruned(
    model: PreTrainedModel,
    path: str | os.PathLike,
    pruning_config: PruningConfig | None = None,
    processing_class: object | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a (compacted) model with its structure, pruning config and sparsity report, atomically: everything is
    written to a temporary folder beside ``path`` and renamed into place, so an interrupted save leaves no partial
    checkpoint. An existing non-empty ``path`` is refused unless ``overwrite``."""
    from hfprune.pruning.stats import sparsity_report

    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise HfpruneError(f"save_pruned: {path} exists and is not empty; choose a new folder or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    PrunedStructure.of(model).attach(model)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        model.save_pretrained(staging)
        if processing_class is not None:
            processing_class.save_pretrained(staging)
        if pruning_config is not None:
            pruning_config.save_pretrained(staging)
        atomic_write_json(staging / "pruning_report.json", sparsity_report(model).to_dict())
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_pruned(path_or_repo_id: str | os.PathLike, **hub_kwargs) -> PreTrainedModel:
    """Rebuild a pruned model saved by hfprune (local folder or Hub repo id) with its exact per-layer shapes."""
    config = AutoConfig.from_pretrained(path_or_repo_id, **hub_kwargs)
    payload = getattr(config, CONFIG_KEY, None)
    if not payload:
        raise HfpruneError(
            f"load_pruned: {path_or_repo_id} has no '{CONFIG_KEY}' in config.json; it is not a pruned hfprune "
            "checkpoint (load it with from_pretrained)"
        )
    structure = PrunedStructure.from_dict(payload)
    model = _build_with_structure(config, structure)
    state = _load_state_dict(str(path_or_repo_id), **hub_kwargs)
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - _tied_keys(model)
    if missing or result.unexpected_keys:
        raise HfpruneError(
            f"load_pruned: weights in {path_or_repo_id} do not match the recorded structure "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]})"
        )
    model.tie_weights()
    return model.eval()


def export_dense(model: PreTrainedModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``model`` zero-padded to its dense shapes: a checkpoint plain ``from_pretrained`` loads, with the same
    predictions as the pruned model."""
    structure = PrunedStructure.of(model)
    dense = _model_class(model.config)(_dense_config(model.config)).to(model.device)
    own_state = {k: v for k, v in model.state_dict().items()}
    dense_state = dense.state_dict()
    dense.load_state_dict({k: v for k, v in own_state.items() if dense_state[k].shape == v.shape}, strict=False)
    for kind, kept_table in ((UnitKind.HEADS, structure.kept_heads), (UnitKind.NEURONS, structure.kept_neurons)):
        for mine, theirs in zip(unit_groups(model, kind), unit_groups(dense, kind), strict=True):
            mine.scatter_into(theirs, torch.tensor(kept_table[mine.layer], dtype=torch.long))
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise HfpruneError(f"export_dense: {path} exists and is not empty; choose a new folder or pass overwrite=True")
    dense.save_pretrained(path)
    return path


def _dense_config(config: PretrainedConfig) -> PretrainedConfig:
    dense = copy.deepcopy(config)
    if hasattr(dense, CONFIG_KEY):
        delattr(dense, CONFIG_KEY)
    return dense


def _model_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    names = getattr(config, "architectures", None) or []
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise HfpruneError(f"config.architectures: expected a transformers model class name, got {names!r}")
    return cls


def _build_with_structure(config: PretrainedConfig, structure: PrunedStructure) -> PreTrainedModel:
    """A model of the saved class, sliced to the saved per-layer head and neuron counts."""
    model = _model_class(config)(_dense_config(config))
    masks = {
        UnitKind.HEADS: [_first_n(structure.dense_num_heads, len(k)) for k in structure.kept_heads],
        UnitKind.NEURONS: [_first_n(structure.dense_ffn_size, len(k)) for k in structure.kept_neurons],
    }
    compact(model, masks)
    structure.attach(model)
    return model


def _first_n(total: int, n: int) -> torch.Tensor:
    mask = torch.zeros(total)
    mask[:n] = 1
    return mask


def _load_state_dict(path_or_repo_id: str, **hub_kwargs) -> dict[str, torch.Tensor]:
    local = Path(path_or_repo_id)
    if local.is_dir():
        resolve = local.joinpath
    else:
        def resolve(name: str) -> Path:
            return Path(hf_hub_download(path_or_repo_id, name, **hub_kwargs))
    try:
        index_file = resolve(WEIGHTS_INDEX_NAME)
    except Exception:  # noqa: BLE001 - a missing index on the Hub means a single-file checkpoint
        index_file = None
    if index_file is not None and index_file.is_file():
        shards = sorted(set(json.loads(index_file.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(resolve(shard)).items()}
    weights = resolve(WEIGHTS_NAME)
    if not weights.is_file():
        raise HfpruneError(f"load_pruned: no {WEIGHTS_NAME} in {path_or_repo_id} (only safetensors weights are read)")
    return load_file(weights)


def _tied_keys(model: PreTrainedModel) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied if not isinstance(tied, dict) else tied.keys())
