"""The model card of a pruned model: Hub metadata (``library_name``, ``base_model``, tags, datasets, a
``model-index`` with the task metric, attack success rates and membership-inference AUC) and sections on the
pruning procedure, the structure kept per layer, loading with and without hfprune, and framework versions.

Everything comes from files in the model folder (``config.json``'s recorded structure, ``pruning_config.json``,
``pruning_report.json``, and ``hfprune_results.json`` written by ``hfprune run``) or from an ``audit.json`` written
by ``hfprune audit``. No credential is ever read here, so none can end up in the card.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.errors import ConfigError
from hfprune.models import DEFAULT_MODEL, DEFAULT_MODEL_ALIASES

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard

    from hfprune.audit.model_audit import ModelAudit

# distributions listed under "Framework versions", in order
VERSIONED = ("hfprune", "transformers", "torch", "datasets", "tokenizers", "huggingface_hub", "textattack")
HUB_TASKS = {"sequence-classification": "text-classification", "causal-lm": "text-generation"}
LOAD_CLASSES = {"sequence-classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}
DENSE_EXPORT_DIR = "dense-export"


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
        self.audit = self._audit(audit_dir)

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
        name = self.results.get("base_model")
        if not name:
            return None
        if name.lower() in DEFAULT_MODEL_ALIASES:
            return DEFAULT_MODEL
        looks_like_repo = name.count("/") <= 1 and not name.startswith((".", "/", "~"))
        return name if looks_like_repo else None

    @property
    def dataset(self) -> tuple[str | None, str | None, str | None]:
        """(name as used, Hub id, Hub config) of the training dataset."""
        from hfprune.data import lookup

        name = self.results.get("dataset") or (self.audit.dataset if self.audit is not None else None)
        if not name:
            return None, None, None
        spec = lookup(name)
        if spec is None:
            return name, name, None
        return name, spec.hub_path, spec.hub_config

    @property
    def quality(self) -> dict[str, Any] | None:
        pruned = self.results.get("pruned")
        return pruned["quality"] if pruned else None


# ---------------------------------------------------------------------------------------------------- metadata
def eval_results(inputs: CardInputs, model_name: str) -> list[EvalResult]:
    """model-index entries: the task metric on the evaluation split, attack success rate per recipe and the
    membership-inference AUC (on members vs held-out rows of the train split)."""
    from huggingface_hub import EvalResult

    name, hub_id, config = inputs.dataset
    if name is None:
        return []
    task = HUB_TASKS[inputs.task]
    common = {"task_type": task, "dataset_type": hub_id or name, "dataset_name": name, "dataset_config": config}
    results = []
    quality = inputs.quality
    if quality is not None:
        results.append(EvalResult(**common, dataset_split=quality["split"], metric_type=quality["metric"],
                                  metric_value=round(float(quality["value"]), 4),
                                  metric_name=f"{quality['metric'].capitalize()} ({quality['n_examples']} examples)"))
    audit = inputs.audit
    if audit is not None:
        for r in audit.robustness:
            if not math.isnan(r.attack_success_rate.value):
                results.append(EvalResult(
                    **common, dataset_split=_split_of(inputs), metric_type="attack_success_rate",
                    metric_value=round(r.attack_success_rate.value, 4),
                    metric_name=f"Attack success rate ({r.recipe}, {r.n_examples} examples)"))
        best = audit.strongest_mia()
        if best is not None and not math.isnan(best[1]):
            results.append(EvalResult(**common, dataset_split="train", metric_type="roc_auc",
                                      metric_value=round(best[1], 4),
                                      metric_name=f"Membership inference AUC ({best[0]} attack)"))
        exposure = audit.max_exposure()
        if exposure is not None and not math.isnan(exposure[1]):
            results.append(EvalResult(**common, dataset_split="train", metric_type="canary_exposure",
                                      metric_value=round(exposure[1], 4),
                                      metric_name=f"Canary exposure, bits ({exposure[0]} repetitions)"))
    return results


def _split_of(inputs: CardInputs) -> str:
    quality = inputs.quality
    if quality:
        return quality["split"]
    return (inputs.audit.split if inputs.audit is not None else None) or "validation"


def card_data(inputs: CardInputs, repo_id: str) -> Any:
    from huggingface_hub import ModelCardData

    model_name = repo_id.split("/")[-1]
    _, hub_id, _ = inputs.dataset
    return ModelCardData(
        library_name="hfprune", base_model=inputs.base_model, model_name=model_name,
        tags=["hfprune", "pruning", "structured-pruning", "distillation", "transformers", HUB_TASKS[inputs.task]],
        datasets=[hub_id] if hub_id else None, pipeline_tag=HUB_TASKS[inputs.task],
        eval_results=eval_results(inputs, model_name) or None,
    )


# ---------------------------------------------------------------------------------------------------- sections
def _summary(inputs: CardInputs, repo_id: str) -> str:
    r, base = inputs.report, inputs.base_model
    dataset = f"`{inputs.dataset[0]}`" if inputs.dataset[0] else "its training data"
    if base is not None:
        origin = f"A structurally pruned version of `{base}` fine-tuned on {dataset}"
    elif inputs.results and inputs.results.get("base_model") is None:
        origin = f"A structurally pruned {inputs.config.get('model_type', 'model')} trained from scratch on {dataset}"
    else:
        origin = f"A structurally pruned model trained on {dataset}"
    parts = [f"# {repo_id.split('/')[-1]}", "",
             f"{origin}, made with hfprune (movement pruning of attention heads and FFN neurons as a "
             "`transformers` TrainerCallback, distillation from the dense model)."]
    if r:
        parts.append(f"{r['heads_total'] - r['heads_kept']} of {r['heads_total']} attention heads and "
                     f"{r['neurons_total'] - r['neurons_kept']} of {r['neurons_total']} FFN neurons are removed: "
                     f"{100 * r['param_sparsity']:.1f}% of the parameters and {100 * r['flops_sparsity']:.1f}% of "
                     f"the transformer-layer FLOPs (sequence length {r['seq_len']}).")
    return "\n".join(parts)


def _changes(inputs: CardInputs) -> str:
    """"What pruning changed": paired tests of this model against the dense one, when both records allow them."""
    from hfprune.audit.compare import PairedRecords, changes_markdown, compare_models, decide_groups
    from hfprune.audit.model_audit import ModelAudit

    pruned, dense = inputs.results.get("pruned"), inputs.results.get("dense")
    if not pruned or not dense:
        return ""
    dense_audit = ModelAudit.from_dict(dense["audit"]) if dense.get("audit") else None
    found = compare_models(PairedRecords.of(dense["quality"], dense_audit),
                           PairedRecords.of(pruned["quality"], inputs.audit))
    return changes_markdown(decide_groups({"this model": found})).rstrip() if found else ""


def _results(inputs: CardInputs) -> str:
    pruned, dense = inputs.results.get("pruned"), inputs.results.get("dense")
    if not pruned or not dense:
        return ""
    lines = ["## Results", "", "| model | " + pruned["quality"]["metric"] + " | parameters | latency ms (seq "
             f"{(pruned.get('latency') or {}).get('seq_len', 128)}, batch 1) |", "|---|---|---|---|"]
    latency = pruned.get("latency") or {}
    lines.append(f"| dense | {dense['quality']['value']:.4f} | {dense['sparsity']['params']:,} | "
                 f"{latency.get('dense_ms', float('nan')):.1f} |")
    lines.append(f"| pruned (this model) | {pruned['quality']['value']:.4f} | {pruned['sparsity']['params']:,} | "
                 f"{latency.get('pruned_ms', float('nan')):.1f} |")
    return "\n".join(lines + ["", f"{pruned['quality']['metric'].capitalize()} on {pruned['quality']['n_examples']} "
                              f"`{pruned['quality']['split']}` examples. Latency: median CPU forward, dense and pruned "
                              "timed interleaved."])


def _audit_section(inputs: CardInputs) -> str:
    audit = inputs.audit
    if audit is None:
        return ""
    dense = inputs.results.get("dense", {}).get("audit")
    dense_audit = None
    if dense:
        from hfprune.audit.model_audit import ModelAudit

        dense_audit = ModelAudit.from_dict(dense)
    lines = ["## Robustness and privacy audit", ""]
    if audit.robustness:
        lines += ["| attack | this model: success rate | dense model |", "|---|---|---|"]
        dense_asr = dense_audit.attack_success_rates() if dense_audit else {}
        for r in audit.robustness:
            other = dense_asr.get(r.recipe)
            lines.append(f"| {r.recipe} ({r.n_examples} examples, budget {r.query_budget}) | "
                         f"{r.attack_success_rate.format()} | {'' if other is None else f'{other:.3f}'} |")
        lines.append("")
    best = audit.strongest_mia()
    if best is not None:
        dense_best = dense_audit.strongest_mia() if dense_audit else None
        gap = audit.privacy.gap if audit.privacy else None
        lines.append(f"Membership inference ({best[0]} attack, the strongest of those run): AUC {best[1]:.3f}"
                     + (f" (dense model: {dense_best[1]:.3f})" if dense_best else "") + "; 0.5 means no leakage."
                     + (f" Train / held-out {gap.accuracy_kind}: {gap.train_accuracy:.3f} / "
                        f"{gap.heldout_accuracy:.3f}." if gap else ""))
    exposure = audit.max_exposure()
    if exposure is not None:
        lines.append(f"Canaries inserted {exposure[0]} times: mean exposure {exposure[1]:.2f} bits.")
    lines += ["", "The membership split and any canaries are not uploaded: they would reveal the training members "
              "and the planted secrets."]
    return "\n".join(lines)


def _procedure(inputs: CardInputs) -> str:
    p, res = inputs.pruning, inputs.results
    lines = ["## Pruning procedure", ""]
    if p:
        lines.append(f"- Scores: `{p.get('scoring')}` ({p.get('allocation')} allocation); target sparsity: "
                     f"{100 * p.get('head_sparsity', 0):.0f}% of heads, {100 * p.get('ffn_sparsity', 0):.0f}% of FFN "
                     f"neurons, {100 * p.get('weight_sparsity', 0):.0f}% of remaining weights "
                     f"(`{p.get('weight_method')}`).")
        lines.append(f"- Schedule: cubic ramp after {100 * p.get('warmup_ratio', 0):.0f}% warm-up, masks frozen "
                     f"for the last {100 * p.get('cooldown_ratio', 0):.0f}% of steps, updated every "
                     f"{p.get('mask_update_interval')} steps; pruned units physically removed at the end.")
    training, distill = res.get("training"), res.get("distillation")
    if training:
        lines.append(f"- Dense model: fine-tuned {_epochs(training['dense_epochs'])} on {training['train_samples']} "
                     f"examples (max length {training['max_length']}, batch {training['batch_size']}, learning rate "
                     f"{training['learning_rate']:g}, seed {training['seed']}); pruning: "
                     f"{_epochs(training['prune_epochs'])} on the same examples.")
    if distill:
        lines.append(f"- Distillation from the dense model: {'on' if distill['enabled'] else 'off'}"
                     + (f" (alpha {distill['alpha']:g}, temperature {distill['temperature']:g})"
                        if distill["enabled"] else "") + ".")
    return "\n".join(lines)


def _epochs(value: float) -> str:
    return f"{value:g} epoch" + ("" if value == 1 else "s")


def _structure(inputs: CardInputs) -> str:
    s = inputs.structure
    lines = ["## Structure kept", "",
             f"Dense model: {len(s['kept_heads'])} layers of {s['dense_num_heads']} heads and {s['dense_ffn_size']} "
             "FFN neurons. Kept per layer (indices in the dense numbering are in `config.json`, "
             "`hfprune_structure`):", "", "| layer | heads kept | head indices | FFN neurons kept |",
             "|---|---|---|---|"]
    for layer, (heads, neurons) in enumerate(zip(s["kept_heads"], s["kept_neurons"], strict=True)):
        lines.append(f"| {layer} | {len(heads)}/{s['dense_num_heads']} | {', '.join(map(str, heads))} | "
                     f"{len(neurons)}/{s['dense_ffn_size']} |")
    return "\n".join(lines)


def _loading(inputs: CardInputs, repo_id: str, dense_export: bool) -> str:
    cls = LOAD_CLASSES[inputs.task]
    lines = ["## How to load", "", "With hfprune (`pip install hfprune`), the pruned shapes are rebuilt from "
             "`config.json`:", "", "```python", "from transformers import AutoTokenizer",
             "from hfprune import load_pruned",
             "", f'model = load_pruned("{repo_id}")', f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```",
             "", "Without hfprune at inference time: zero-pad the pruned model back to its dense shapes once (a "
             "removed head or neuron then contributes exactly nothing, so predictions are unchanged) and load that "
             "with plain `transformers`:", "", "```python", "from hfprune import export_dense, load_pruned",
             "", f'export_dense(load_pruned("{repo_id}"), "dense-export")', "", f"from transformers import {cls}",
             f'model = {cls}.from_pretrained("dense-export")', "```"]
    if dense_export:
        lines += ["", f"This repository also holds that export in `{DENSE_EXPORT_DIR}/`:", "", "```python",
                  f"from transformers import {cls}",
                  f'model = {cls}.from_pretrained("{repo_id}", subfolder="{DENSE_EXPORT_DIR}")', "```"]
    return "\n".join(lines)


def framework_versions() -> dict[str, str]:
    """Versions of the libraries the model was pruned and audited with (installed distributions only)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _versions() -> str:
    return "\n".join(["## Framework versions", ""] + [f"- {k}: {v}" for k, v in framework_versions().items()])


def build_model_card(
    model_dir: str | Path, repo_id: str, audit_dir: str | Path | None = None, dense_export: bool = False
) -> ModelCard:
    """The card of the pruned model in ``model_dir`` for ``repo_id`` (see the module docstring)."""
    from huggingface_hub import ModelCard

    inputs = CardInputs(model_dir, audit_dir)
    sections = [_summary(inputs, repo_id), _changes(inputs), _results(inputs), _audit_section(inputs),
                _procedure(inputs), _structure(inputs), _loading(inputs, repo_id, dense_export), _versions()]
    body = "\n\n".join(section for section in sections if section) + "\n"
    return ModelCard(f"---\n{card_data(inputs, repo_id).to_yaml()}\n---\n\n{body}")
