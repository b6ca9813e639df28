"""What travels with saved pruned weights: the tokenizer, and how to load the folder.

transformers 5.24 has no hook through which a checkpoint could add a hint to ``from_pretrained``'s errors: a
pruned folder loaded with plain ``from_pretrained`` / ``pipeline`` fails in ``log_state_dict_report`` with a
size-mismatch table and "You set `ignore_mismatched_sizes` to `False`", whatever config.json holds (unknown config
keys are kept silently; only ``model_type`` reaches an error message, and changing it would break the tokenizer
and the Hub's tooling). So the hint lives where a person looks: the folder's README.md, a ``hfprune_loading`` line in
config.json, and a warning when the folder is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from transformers import PreTrainedModel

from hfprune.pruning.structure import PrunedStructure
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

# config.json key holding the one-line loading hint (read by people; transformers ignores unknown keys)
LOADING_KEY = "hfprune_loading"
LOADING_HINT = ("pruned by hfprune: per-layer head and FFN sizes that plain from_pretrained cannot build (it fails "
                "with a size mismatch). Load with hfprune.load_pruned(path); for plain transformers, write a "
                "zero-padded copy with hfprune.export_dense(hfprune.load_pruned(path), dense_dir).")


def save_tokenizer(model: PreTrainedModel, folder: Path, processing_class: object | None = None) -> bool:
    """Save ``processing_class`` into ``folder``, or else the tokenizer saved in the folder ``model`` was loaded
    from (``config._name_or_path``), so that ``pipeline(folder)`` works alone. False (logged) when neither is
    known."""
    if processing_class is None:
        from hfprune.models import TOKENIZER_FILES, load_tokenizer

        source = getattr(model.config, "_name_or_path", "") or ""
        if source and any(Path(source, name).is_file() for name in TOKENIZER_FILES):
            processing_class = load_tokenizer(source)  # refuses a tokenizer that asks for its own code
    if processing_class is None:
        logger.info("no tokenizer saved in %s: pass processing_class= (or save the tokenizer beside the model it was "
                    "loaded from) for pipeline(folder) to work alone", folder)
        return False
    processing_class.save_pretrained(folder)
    return True


def mark_pruned_folder(model: PreTrainedModel, folder: Path, final_path: str | os.PathLike) -> None:
    """Write README.md (unless the folder has one) saying how to load the pruned model in ``folder``, which is
    renamed to ``final_path`` once complete, and warn that plain ``from_pretrained`` cannot load it (the caller
    decides that it cannot: :meth:`PrunedStructure.plain_loadable`)."""
    structure = PrunedStructure.of(model)
    readme = folder / "README.md"
    if not readme.exists():
        heads = [len(k) for k in structure.kept_heads]
        neurons = [len(k) for k in structure.kept_neurons]
        body = "\n".join([
            f"# Pruned {type(model).__name__} (hfprune)", "",
            f"Kept attention heads per layer (of {structure.dense_num_heads}): {heads}; kept FFN neurons per layer "
            f"(of {structure.dense_ffn_size}): {neurons}.", "",
            "Plain `from_pretrained` / `pipeline` cannot build these per-layer shapes: they stop with a size-mismatch "
            "`RuntimeError`. Load it with hfprune:", "",
            "```python", "import hfprune", "", f'model = hfprune.load_pruned("{final_path}")', "```", "",
            "or write a zero-padded copy (same predictions) that plain transformers loads anywhere:", "",
            "```python", f'hfprune.export_dense(hfprune.load_pruned("{final_path}"), "dense-export")',
            "# then: transformers.pipeline(\"text-classification\", model=\"dense-export\")", "```", "",
        ])
        card = ModelCard(f"---\n{ModelCardData(library_name='hfprune', tags=['hfprune', 'pruned']).to_yaml()}\n---\n"
                         + body)
        card.save(readme)
    logger.warning("%s: %s", final_path, LOADING_HINT)
