"""Saving and reloading pruned models.

``load_pruned`` rebuilds the exact pruned shapes from the structure in ``config.json`` and loads the safetensors
weights; ``export_dense`` zero-pads a pruned model back to its dense shapes so that plain ``transformers`` loads it
anywhere with the same predictions (a zero head or neuron contributes exactly nothing). ``save_compressed`` stores
weight-pruned matrices as their nonzero values plus a bitmask (safetensors, no pickle), and ``load_compressed``
rebuilds the identical model.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import PretrainedConfig, PreTrainedModel

from hfprune.errors import HfpruneError
from hfprune.models.trusted import index_shards, model_class, safe_load_config
from hfprune.pruning.architectures import get_architecture
from hfprune.pruning.compaction import compact
from hfprune.pruning.companions import LOADING_HINT, LOADING_KEY, mark_pruned_folder, save_tokenizer
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.latency_report import load_latency_table, save_latency_table
from hfprune.pruning.masks import ACTIVE_PRUNERS, ACTIVE_WEIGHT_PRUNERS
from hfprune.pruning.nonfinite import unreadable_weights
from hfprune.pruning.structure import CONFIG_KEY, PrunedStructure
from hfprune.pruning.units import UnitKind, unit_groups
from hfprune.pruning.weight.encoding import pack_bits, unpack_bits
from hfprune.pruning.weight.matrices import prunable_matrices
from hfprune.utils.io import atomic_write_json, disk_full_reported, replace_folder

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
COMPRESSED_FORMAT = "hfprune-values-bitmask"
_VALUES, _BITMASK = ".values", ".bitmask"


def save_pruned(
    model: PreTrainedModel,
    path: str | os.PathLike,
    pruning_config: PruningConfig | None = None,
    processing_class: object | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a (compacted) model with its structure, pruning config and sparsity report, atomically: everything is
    written to a temporary folder beside ``path`` and renamed into place, so an interrupted save leaves no partial
    checkpoint. An existing non-empty ``path`` is refused unless ``overwrite``. The tokenizer goes along:
    ``processing_class``, or else the one saved in the folder the model was loaded from. Where plain
    ``from_pretrained`` cannot build the saved shapes (widths that differ between layers, or head counts a config
    without ``head_dim`` cannot state), a README.md and a ``hfprune_loading`` line in config.json say how to load it."""
    from hfprune.pruning.stats import sparsity_report

    path = Path(path)
    with _staged_folder(path, overwrite, "save_pruned") as staging:
        structure = PrunedStructure.of(model)
        structure.attach(model)
        # the hint only where plain from_pretrained fails: a folder whose every layer has config.json's widths loads
        plain = structure.plain_loadable(model.config)
        if plain:
            with suppress(AttributeError):
                delattr(model.config, LOADING_KEY)
        else:
            setattr(model.config, LOADING_KEY, LOADING_HINT)
        model.save_pretrained(staging)
        save_tokenizer(model, staging, processing_class)
        if pruning_config is not None:
            pruning_config.save_pretrained(staging)
        atomic_write_json(staging / "pruning_report.json", sparsity_report(model).to_dict())
        if not plain:
            mark_pruned_folder(model, staging, path)
        save_latency_table(model, staging)  # the table of a latency-targeted run, with its prediction
    return path


@contextmanager
def _staged_folder(path: Path, overwrite: bool, caller: str) -> Iterator[Path]:
    """A temporary folder beside ``path``, renamed into place when the block succeeds and removed if it fails.

    A previous save at ``path`` is renamed aside (not deleted) before the new one is renamed in, and deleted only
    after: a process killed at any point leaves either the old or the new model complete at ``path`` (or, between
    the two renames, the old one complete at ``.<name>.old-<pid>``). Staging folders of killed processes are removed.
    """
    from hfprune.utils.io import refuse_symlink
    from hfprune.utils.lock import pid_alive

    refuse_symlink(path, caller, "a folder, not a link (a model is never written or replaced through one)")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise HfpruneError(f"{caller}: {path} exists and is not empty; choose a new folder or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.tmp-*-*"):
        pid = leftover.name.removeprefix(f".{path.name}.tmp-").split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
    try:
        with disk_full_reported(path):
            yield staging
            replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_pruned(path_or_repo_id: str | os.PathLike, **hub_kwargs) -> PreTrainedModel:
    """Rebuild a pruned model saved by hfprune (local folder or Hub repo id) with its exact per-layer shapes."""
    config = safe_load_config(path_or_repo_id, "load_pruned", **hub_kwargs)
    payload = getattr(config, CONFIG_KEY, None)
    if not payload:
        raise HfpruneError(
            f"load_pruned: {path_or_repo_id} has no '{CONFIG_KEY}' in config.json; it is not a pruned hfprune "
            "checkpoint (load it with from_pretrained)"
        )
    structure = PrunedStructure.from_dict(payload)
    files = _weight_files(str(path_or_repo_id), **hub_kwargs)
    model = _build_with_structure(config, structure, _weight_shapes(files), str(path_or_repo_id))
    _load_matching(model, _load_state_dict(files), f"load_pruned: weights in {path_or_repo_id}")
    if Path(path_or_repo_id).is_dir():
        load_latency_table(model, path_or_repo_id)
    return model.eval()


def _load_matching(model: PreTrainedModel, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` after checking it has every weight, nothing else, and the recorded shapes
    (torch's own size-mismatch error names neither the checkpoint nor the cause)."""
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    for name, tensor in state.items():
        if name in shapes and tuple(tensor.shape) != shapes[name]:
            raise HfpruneError(f"{where}: tensor {name!r} has shape {list(tensor.shape)}, expected "
                               f"{list(shapes[name])} (the shape the recorded structure gives)")
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - _tied_keys(model)
    if missing or result.unexpected_keys:
        raise HfpruneError(f"{where} do not match the recorded structure (missing {sorted(missing)[:5]}, "
                           f"unexpected {sorted(result.unexpected_keys)[:5]})")
    model.tie_weights()


def export_dense(model: PreTrainedModel, path: str | os.PathLike, overwrite: bool = False,
                 processing_class: object | None = None) -> Path:
    """Write ``model`` zero-padded to its dense shapes: a checkpoint plain ``from_pretrained`` loads, with the same
    predictions as the pruned model. The tokenizer goes along (``processing_class``, or else the one saved in the
    folder the model was loaded from), so ``pipeline(task, model=path)`` works with nothing else."""
    structure = PrunedStructure.of(model)
    dense = type(model)(_dense_config(model.config)).to(model.device)  # the model's own class, recorded or not
    own_state = {k: v for k, v in model.state_dict().items()}
    dense_state = dense.state_dict()
    dense.load_state_dict({k: v for k, v in own_state.items() if dense_state[k].shape == v.shape}, strict=False)
    for kind, kept_table in ((UnitKind.HEADS, structure.kept_heads), (UnitKind.NEURONS, structure.kept_neurons)):
        # the query-head view: the recorded structure numbers query heads, whatever granularity pruned them
        for mine, theirs in zip(unit_groups(model, kind, "query"), unit_groups(dense, kind, "query"), strict=True):
            mine.scatter_into(theirs, torch.tensor(kept_table[mine.layer], dtype=torch.long))
    path = Path(path)
    with _staged_folder(path, overwrite, "export_dense") as staging:
        dense.save_pretrained(staging)
        save_tokenizer(model, staging, processing_class)
    return path


def _dense_config(config: PretrainedConfig) -> PretrainedConfig:
    """``config`` with the dense widths back (compaction writes widths shared by all layers into it)."""
    dense = copy.deepcopy(config)
    payload = getattr(dense, CONFIG_KEY, None)
    if payload:
        for name, value in PrunedStructure.from_dict(payload).dense_fields(dense).items():
            setattr(dense, name, value)
    for key in (CONFIG_KEY, LOADING_KEY):
        if hasattr(dense, key):
            delattr(dense, key)
    return dense


def _build_with_structure(config: PretrainedConfig, structure: PrunedStructure,
                          weights: dict[str, tuple[int, ...]] | None = None, where: str = "") -> PreTrainedModel:
    """A model of the saved class, sliced to the saved per-layer head and neuron counts.

    Nothing of the recorded sizes is trusted before it is checked: the structure must agree with the config
    (``PrunedStructure.check_against``), the model is first built on the meta device (no memory) and every tensor
    shape compared with the safetensors headers in ``weights``, and the FFN is built only as wide as the widest kept
    layer, so a tampered ``dense_ffn_size`` or ``intermediate_size`` never allocates its dense width."""
    structure.check_against(config)
    spec = get_architecture(config)
    built = _dense_config(config)
    width = max([1, *(len(k) for k in structure.kept_neurons)])
    setattr(built, spec.ffn_size_field, width)
    masks = {
        UnitKind.HEADS: [_indicator(structure.dense_num_heads, k) for k in structure.kept_heads],
        # neurons have no grouping, so the first len(k) of the narrowed FFN give the same shapes
        UnitKind.NEURONS: [_indicator(width, range(len(k))) for k in structure.kept_neurons],
    }

    def build(meta: bool = False) -> PreTrainedModel:
        with torch.device("meta") if meta else nullcontext():
            model = model_class(config)(copy.deepcopy(built))
        compact(model, masks)
        setattr(model.config, spec.ffn_size_field, getattr(config, spec.ffn_size_field))
        structure.attach(model)
        return model

    if weights is not None:
        shapes = {name: tuple(t.shape) for name, t in build(meta=True).state_dict().items()}
        for name, shape in shapes.items():
            if name in weights and weights[name] != shape:
                raise HfpruneError(f"load_pruned: {where}: {CONFIG_KEY} and config.json give {name} the shape "
                                   f"{list(shape)}, its safetensors weights {list(weights[name])}; expected them "
                                   "to agree")
    return build()


def _indicator(total: int, kept: Sequence[int]) -> torch.Tensor:
    """A keep-mask of the recorded units: only the shapes matter, but grouped-query attention needs the real
    pattern (which key/value groups keep how many query heads)."""
    mask = torch.zeros(total)
    mask[list(kept)] = 1
    return mask


def _weight_files(path_or_repo_id: str, **hub_kwargs) -> list[Path]:
    """The safetensors files of a saved model: the shards its index names (confined to its folder), else
    ``model.safetensors``."""
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
        return [resolve(shard) for shard in index_shards(index_file, local=local.is_dir())]
    weights = resolve(WEIGHTS_NAME)
    if not weights.is_file():
        raise HfpruneError(f"load_pruned: no {WEIGHTS_NAME} in {path_or_repo_id} (only safetensors weights are read)")
    return [weights]


def _weight_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the safetensors headers only (nothing is loaded)."""
    shapes = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                shapes.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise unreadable_weights(file, exc) from None
    return shapes


def _load_state_dict(files: list[Path]) -> dict[str, torch.Tensor]:
    return {name: tensor for file in files for name, tensor in _read_weights(file).items()}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """``safetensors.load_file``, with a truncated or foreign file reported as such, naming the file."""
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise unreadable_weights(path, exc) from None


def _tied_keys(model: PreTrainedModel) -> set[str]:
    """Names of parameters that are really tied to an earlier one (what ``save_pretrained`` leaves out). Not the
    class's ``_tied_weights_keys``: those are only candidates, e.g. a Llama with ``tie_word_embeddings=False`` has
    its own ``lm_head``, which must be saved and loaded."""
    seen: set[int] = set()
    tied = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied


def save_compressed(model: PreTrainedModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``model`` with each weight-pruned matrix stored as its nonzero values plus a bitmask of where they go
    (``numpy.packbits``, 1 bit per weight), everything else dense, in one safetensors file beside ``config.json``
    (with the head / FFN structure of a compacted model). A matrix is compressed only where that is smaller:
    values + bitmask beat dense below about 97% density in float32. Masks of an attached ``WeightPruner`` are
    applied to what is written (the model itself is not changed). ``load_compressed`` reads it back."""
    structured = ACTIVE_PRUNERS.get(model)
    if structured is not None and any(bool((m == 0).any()) for masks in structured.masks.values() for m in masks):
        raise HfpruneError("save_compressed: heads or neurons are masked but not removed; compact the model first "
                           "(hfprune.compact(model))")
    tensors, compressed = _compressed_tensors(model)
    path = Path(path)
    with _staged_folder(path, overwrite, "save_compressed") as staging:
        PrunedStructure.of(model).attach(model)
        model.config.architectures = [type(model).__name__]  # as save_pretrained records it, for load_compressed
        model.config.save_pretrained(staging)
        save_file(tensors, staging / WEIGHTS_NAME, metadata={"format": COMPRESSED_FORMAT,
                                                              "compressed": json.dumps(compressed)})
    return path


def load_compressed(path: str | os.PathLike) -> PreTrainedModel:
    """Rebuild a model written by ``save_compressed``: the recorded head / FFN structure, dense weights restored
    from values + bitmask. Predictions are identical to the saved model's."""
    path = Path(path)
    config = safe_load_config(path, "load_compressed")
    payload = getattr(config, CONFIG_KEY, None)
    if payload:
        model = _build_with_structure(config, PrunedStructure.from_dict(payload))
    else:
        model = model_class(config)(_dense_config(config))
    weights = path / WEIGHTS_NAME
    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise unreadable_weights(weights, exc) from None
    if metadata.get("format") != COMPRESSED_FORMAT:
        raise HfpruneError(f"load_compressed: {weights} was not written by save_compressed (format "
                           f"{metadata.get('format')!r}); load it with load_pruned or from_pretrained")
    stored = _read_weights(weights)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    for name in json.loads(metadata["compressed"]):
        bits = unpack_bits(stored.pop(name + _BITMASK), shapes[name])
        dense = torch.zeros(shapes[name], dtype=stored[name + _VALUES].dtype)
        dense[bits] = stored.pop(name + _VALUES)
        stored[name] = dense
    _load_matching(model, stored, f"load_compressed: weights in {path}")
    return model.eval()


def _compressed_tensors(model: PreTrainedModel) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict with weight-pruned matrices as values + bitmask, and the names of those matrices."""
    weights = ACTIVE_WEIGHT_PRUNERS.get(model)
    masks = {} if weights is None else {m.name: mask for m, mask in zip(weights.matrices, weights.masks, strict=True)}
    prunable = {m.name + ".weight": m.name for m in prunable_matrices(model)}
    tied = _tied_keys(model)
    tensors, compressed = {}, []
    for name, tensor in model.state_dict().items():
        if name in tied:
            continue
        tensor = tensor.detach().cpu()
        if name in prunable and prunable[name] in masks:
            tensor = tensor * masks[prunable[name]].cpu()
        nonzero = tensor != 0
        values_bytes = int(nonzero.sum()) * tensor.element_size() + -(-tensor.numel() // 8)
        if name in prunable and values_bytes < tensor.numel() * tensor.element_size():
            tensors[name + _VALUES] = tensor[nonzero].contiguous()
            tensors[name + _BITMASK] = pack_bits(nonzero)
            compressed.append(name)
        else:
            tensors[name] = tensor.contiguous()
    return tensors, compressed
