"""Loading what a recorded training run saved, and training the reference and shadow models an audit compares to.

Reference and shadow models must never have seen an audited example: they are trained with the target's own
recipe on data drawn disjoint from the target's members and non-members (Carlini et al. 2022's offline setting).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.audit.privacy.canaries import CANARY_FILE, CanarySet
from hfprune.audit.privacy.split import MembershipSplit
from hfprune.errors import ConfigError
from hfprune.utils.config import check_int
from hfprune.utils.logging import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = get_logger(__name__)

# split.task -> transformers Auto class name that loads the model
AUTO_CLASSES = {"sequence-classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}


@dataclass
class AuditedRun:
    """A model with everything its training run recorded for the audit."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    split: MembershipSplit
    canaries: CanarySet | None
    path: str


def load_run(directory: str | os.PathLike, split_from: str | os.PathLike | None = None,
             device: str = "auto") -> AuditedRun:
    """Model (in eval mode, on ``device``: see :func:`hfprune.training_args.resolve_device`), tokenizer,
    membership split and canaries saved in ``directory``.

    A compacted pruned checkpoint (config records the kept units) is rebuilt with ``load_pruned``. ``split_from``
    reads the split (and canaries) from another directory: a pruned copy saved without them audits against the
    dense run's split.
    """
    from hfprune.models import load_tokenizer
    from hfprune.training_args import process_device

    path = Path(directory)
    recorded = Path(split_from) if split_from is not None else path
    split = MembershipSplit.load(recorded)
    if split.task not in AUTO_CLASSES:
        raise ConfigError(f"{recorded}: split task {split.task!r} is not one of {sorted(AUTO_CLASSES)}")
    canaries = CanarySet.load(recorded) if (recorded / CANARY_FILE).is_file() else None
    model = _load_model(path, split.task).to(process_device(device))
    tokenizer_dir = path if (path / "tokenizer_config.json").is_file() else recorded
    tokenizer = load_tokenizer(tokenizer_dir)
    return AuditedRun(model.eval(), tokenizer, split, canaries, str(path))


def _load_model(path: Path, task: str) -> PreTrainedModel:
    """``load_pruned`` for a compacted checkpoint, else ``from_pretrained``."""
    from hfprune.models import load_model_for_task
    from hfprune.pruning.structure import CONFIG_KEY

    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{path}: no config.json; expected a saved model directory")
    if json.loads(config_file.read_text(encoding="utf-8")).get(CONFIG_KEY):
        from hfprune.pruning.serialization import load_pruned

        return load_pruned(path)
    return load_model_for_task(path, task)  # safetensors only; a missing file is a ModelNotFoundError


# (index, output folder) -> the folder the trained model was saved in
ShadowTrainer = Callable[[int, str], str]


def train_shadows(train_one: ShadowTrainer, k: int, output_root: str | os.PathLike,
                  trained: Sequence[str] = ()) -> list[str]:
    """Train ``k`` shadow models with ``train_one(i, output_root/shadow-<i>)``; return their directories. The first
    ``len(trained)`` are those directories, trained earlier the same way (e.g. a finished run's own), not retrained.

    ``train_one`` trains shadow i on data disjoint from the audited examples, the way the caller's target was
    trained (``hfprune run`` passes its own dense fine-tuning, or that plus pruning and distillation): the audit
    never needs to know the recipe. Shadows cost k trainings: this is the compute the user grants to LiRA.
    """
    from tqdm.auto import tqdm

    check_int("train_shadows", "k", k, minimum=1)
    for directory in trained[:k]:
        logger.info("shadow %s: trained earlier the same way; reusing it", directory)
    directories = [trained[i] if i < len(trained) else train_one(i, str(Path(output_root) / f"shadow-{i}"))
                   for i in tqdm(range(k), desc="shadow models", disable=k < 2)]
    logger.info("trained %d model(s) disjoint from the audited examples under %s", k, output_root)
    return directories


def train_disjoint_models(
    train_fn: Callable[..., Any],
    config: Any,
    target_split: MembershipSplit,
    k: int,
    output_root: str | os.PathLike,
    **train_kwargs: Any,
) -> list[str]:
    """Train ``k`` models with ``config``'s recipe on data disjoint from ``target_split``; return their directories.

    ``train_fn`` is :func:`~hfprune.audit.privacy.finetune_on_members` or
    :func:`~hfprune.audit.privacy.train_canary_lm`; model i uses seed ``config.seed + 1 + i`` (a different data
    draw and initialisation; a set ``split_seed`` moves by as much) and is saved to ``output_root/shadow-<i>``
    (:func:`train_shadows`). The first doubles as a reference model. These are dense models: to shadow a pruned
    target, pass :func:`train_shadows` a trainer that also prunes (``hfprune run`` does with
    ``audits.privacy.shadows: target``).
    """
    def train_one(i: int, directory: str) -> str:
        changes = {"seed": config.seed + 1 + i, "output_dir": directory}
        if getattr(config, "split_seed", None) is not None:  # a fixed split seed would give every shadow one draw
            changes["split_seed"] = config.split_seed + 1 + i
        return train_fn(dataclasses.replace(config, **changes), exclude=target_split, **train_kwargs).output_dir

    check_int("train_disjoint_models", "k", k, minimum=1)
    return train_shadows(train_one, k, output_root)
