"""What a model card reads, gathered from files only: the pruned model folder (``config.json``'s recorded
structure, ``pruning_config.json``, ``pruning_report.json``, ``hfprune_results.json``), the ``report.json`` that
``hfprune prune`` writes beside its ``pruned/`` folder, an ``audit.json`` of ``hfprune audit`` and the base model's own
card when it is on this machine (:mod:`hfprune.hub.card` renders it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL, DEFAULT_MODEL_ALIASES

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

    from hfprune.audit.model_audit import ModelAudit

# written by `hfprune prune` beside the model folder it names in "pruned_dir"
PRUNE_REPORT = "report.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None


class CardInputs:
    """What a card needs, gathered from a pruned model folder (and optionally an ``hfprune audit`` folder)."""

    def __init__(self, model_dir: str | Path, audit_dir: str | Path | None = None) -> None:
        from hfprune.pruning.structure import CONFIG_KEY

        self.model_dir = Path(model_dir)
        config = _read_json(self.model_dir / "config.json")
        if config is None:
            raise ConfigError(f"MODEL_DIR: {self.model_dir} is not a saved model directory (no config.json)")
        if not config.get(CONFIG_KEY):
            raise ConfigError(f"MODEL_DIR: {self.model_dir} is not a pruned hfprune model (no {CONFIG_KEY} in "
                              "config.json); push the pruned/model folder of a run")
        self.config = config
        self.structure = config[CONFIG_KEY]
        self.pruning = _read_json(self.model_dir / "pruning_config.json") or {}
        self.report = _read_json(self.model_dir / "pruning_report.json") or {}
        self.results = _read_json(self.model_dir / "hfprune_results.json") or {}
        self.prune_report = self._prune_report()
        self.audit = self._audit(audit_dir)

    def _prune_report(self) -> dict[str, Any]:
        """``../report.json`` of ``hfprune prune`` when it describes this folder (its ``pruned_dir``), else {}."""
        report = _read_json(self.model_dir.parent / PRUNE_REPORT) or {}
        names_this = Path(str(report.get("pruned_dir", ""))).name == self.model_dir.resolve().name
        return report if names_this and "pruned_accuracy" in report else {}

    def _audit(self, audit_dir: str | Path | None) -> ModelAudit | None:
        from hfprune.audit.model_audit import ModelAudit, load_audit

        if audit_dir is not None:
            return load_audit(audit_dir)
        pruned = self.results.get("pruned")
        return ModelAudit.from_dict(pruned["audit"]) if pruned else None

    @property
    def task(self) -> str:
        if "task" in self.results:
            return str(self.results["task"])
        name = (self.config.get("architectures") or [""])[0]
        return "causal-lm" if name.endswith(("LMHeadModel", "ForCausalLM")) else "sequence-classification"

    @property
    def base_model(self) -> str | None:
        """The Hub id the dense model was fine-tuned from (aliases of the embedded MiniLM resolved); None for a
        local folder or a model trained from scratch, which have no Hub id."""
        name = self.results.get("base_model") or self.prune_report.get("base_model")
        if not name:
            return None
        if name.lower() in DEFAULT_MODEL_ALIASES:
            return DEFAULT_MODEL
        looks_like_repo = name.count("/") <= 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()
        return name if looks_like_repo else None

    @property
    def base_card(self) -> ModelCardData | None:
        """The base model's card metadata when the card is on this machine (the embedded MiniLM, or the local HF
        cache); never fetched: the card of a pruned model is built offline."""
        from huggingface_hub import ModelCard, try_to_load_from_cache

        from hfprune.models import embedded_default_path

        base = self.base_model
        if base is None:
            return None
        local = embedded_default_path() if base == DEFAULT_MODEL else None
        try:
            path = local / "README.md" if local is not None else try_to_load_from_cache(base, "README.md")
        except ValueError:  # not a valid repo id (HFValidationError): nothing to inherit
            return None
        if not isinstance(path, (str, Path)) or not Path(path).is_file():
            return None
        return ModelCard.load(path).data

    @property
    def trained_on(self) -> str | None:
        """The dataset the model was fine-tuned on, as the run or prune report names it."""
        return self.results.get("dataset") or self.prune_report.get("dataset") or None

    @property
    def dataset(self) -> tuple[str | None, str | None, str | None]:
        """(name as used, Hub id, Hub config) of the dataset the metrics were measured on."""
        from hfprune.data import lookup

        name = self.trained_on or (self.audit.dataset if self.audit is not None else None)
        if not name:
            return None, None, None
        spec = lookup(name)
        if spec is None:
            return name, name, None
        return name, spec.hub_path, spec.hub_config

    @property
    def quality(self) -> dict[str, Any] | None:
        """The pruned model's task metric: ``hfprune run``'s record, else the accuracy ``hfprune prune`` reported."""
        pruned = self.results.get("pruned")
        if pruned:
            return pruned["quality"]
        if self.prune_report:
            return {"metric": "accuracy", "value": self.prune_report["pruned_accuracy"], "split": None,
                    "n_examples": None}
        return None

    @property
    def comparison(self) -> dict[str, Any] | None:
        """Dense and pruned side by side (metric, values, parameters, latency) from whichever record has both."""
        pruned, dense = self.results.get("pruned"), self.results.get("dense")
        if pruned and dense:
            return {"metric": pruned["quality"]["metric"], "dense": dense["quality"]["value"],
                    "pruned": pruned["quality"]["value"], "dense_params": dense["sparsity"]["params"],
                    "pruned_params": pruned["sparsity"]["params"], "latency": pruned.get("latency") or {}}
        r = self.prune_report
        if r:
            return {"metric": "accuracy", "dense": r["dense_accuracy"], "pruned": r["pruned_accuracy"],
                    "dense_params": r["sparsity"]["params_dense"], "pruned_params": r["sparsity"]["params"],
                    "latency": {}}
        return None

    @property
    def plain_loadable(self) -> bool:
        """Every layer has the widths config.json states, so plain ``from_pretrained`` builds the pruned shapes
        (``allocation: uniform``, or FFN-only pruning that left the same width everywhere)."""
        from hfprune.models.trusted import safe_load_config
        from hfprune.pruning.structure import PrunedStructure

        config = safe_load_config(self.model_dir, key="MODEL_DIR")
        return PrunedStructure.from_dict(self.structure).plain_loadable(config)
