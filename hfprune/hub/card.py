"""The model card of a pruned model, following the Hub's conventions: metadata (``base_model``, ``license`` and
``language`` inherited from the base model's card when it is known locally, ``datasets``, ``pipeline_tag``,
``library_name: transformers``, tags, a ``model-index`` with the task metric, attack success rates and
membership-inference AUC) and sections on what pruning changed, the results, the audit, the pruning procedure, the
structure kept per layer, loading with and without hfprune, and framework versions.

Everything comes from files: the model folder (``config.json``'s recorded structure, ``pruning_config.json``,
``pruning_report.json``, ``hfprune_results.json`` written by ``hfprune run``), the ``report.json`` that
``hfprune prune`` writes beside its ``pruned/`` folder, an ``audit.json`` of ``hfprune audit`` and the base model's
own card when it is on this machine (:mod:`hfprune.hub.card_inputs` gathers them). What no file shows is left out,
never guessed. No credential is ever read here, so none can end up in the card.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfprune.hub.card_inputs import PRUNE_REPORT, CardInputs
from hfprune.training_args import epochs_text

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData


# distributions listed under "Framework versions", in order
VERSIONED = ("hfprune", "transformers", "torch", "datasets", "tokenizers", "huggingface_hub", "textattack")
HUB_TASKS = {"sequence-classification": "text-classification", "causal-lm": "text-generation"}
LOAD_CLASSES = {"sequence-classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}
TAGS = ("pruning", "structured-pruning", "hfprune")
DENSE_EXPORT_DIR = "dense-export"
# any of these in the folder means AutoTokenizer.from_pretrained(folder) loads the model's own tokenizer
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model")


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
        counted = f" ({quality['n_examples']} examples)" if quality.get("n_examples") else ""
        results.append(EvalResult(**common, dataset_split=quality.get("split"), metric_type=quality["metric"],
                                  metric_value=round(float(quality["value"]), 4),
                                  metric_name=f"{quality['metric'].capitalize()}{counted}"))
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
    if quality and quality.get("split"):
        return quality["split"]
    return (inputs.audit.split if inputs.audit is not None else None) or "validation"


def card_data(inputs: CardInputs, repo_id: str) -> ModelCardData:
    """The card's metadata; ``license`` and ``language`` only where the base model's own card states them."""
    from huggingface_hub import ModelCardData

    model_name = repo_id.split("/")[-1]
    _, hub_id, _ = inputs.dataset
    base = inputs.base_card
    pipeline_tag = HUB_TASKS[inputs.task]
    return ModelCardData(
        library_name="transformers", base_model=inputs.base_model, model_name=model_name,
        license=base.license if base is not None else None, language=base.language if base is not None else None,
        tags=[*TAGS, pipeline_tag], datasets=[hub_id] if hub_id else None, pipeline_tag=pipeline_tag,
        eval_results=eval_results(inputs, model_name) or None,
    )


# ---------------------------------------------------------------------------------------------------- sections
def _summary(inputs: CardInputs, repo_id: str) -> str:
    base, data = inputs.base_model, inputs.trained_on
    model = f"{inputs.config.get('model_type', '')} model".lstrip()
    on = f" fine-tuned on `{data}`" if data else ""
    if base is not None:
        origin = f"A structurally pruned version of `{base}`{on}"
    elif inputs.results and inputs.results.get("base_model") is None:
        origin = f"A structurally pruned {model} trained from scratch" + (f" on `{data}`" if data else "")
    else:
        origin = f"A structurally pruned {model}{on}"
    return "\n".join([f"# {repo_id.split('/')[-1]}", "",
                      f"{origin}: attention heads and FFN neurons removed with hfprune. It loads with "
                      "`hfprune.load_pruned` (see How to load)."])


def _changes(inputs: CardInputs) -> str:
    """"What pruning changed": paired tests of this model against the dense one, when both records allow them, and
    against the run's control (the same training, nothing pruned) when it had one; Holm across both."""
    from hfprune.audit.compare import (
        CONTROL_GROUP,
        CONTROL_NAMES,
        CONTROL_NOTE,
        NO_CONTROL_NOTE,
        PairedRecords,
        changes_markdown,
        compare_models,
        decide_groups,
    )
    from hfprune.audit.model_audit import ModelAudit

    pruned, dense = inputs.results.get("pruned"), inputs.results.get("dense")
    if not pruned or not dense:
        return ""
    if inputs.results.get("seeds"):
        return _seed_changes(inputs.results["seeds"])

    def records(reference: dict[str, Any]) -> PairedRecords:
        audit = ModelAudit.from_dict(reference["audit"]) if reference.get("audit") else None
        return PairedRecords.of(reference["quality"], audit)

    this = PairedRecords.of(pruned["quality"], inputs.audit)
    groups = {"this model": compare_models(records(dense), this)}
    control = inputs.results.get("control")
    names = {}
    if control:
        group = f"this model against {control['name']} {CONTROL_GROUP}"
        groups[group], names[group] = compare_models(records(control), this), CONTROL_NAMES
    if not any(groups.values()):
        return ""
    note = CONTROL_NOTE if names else NO_CONTROL_NOTE
    return changes_markdown(decide_groups(groups), names=names, note=note).rstrip()


def _seed_changes(seeds: dict[str, Any]) -> str:
    """"What pruning changed" of a run with several seeds: the run report's tests, which use every seed."""
    from hfprune.audit.compare import (
        CONTROL_GROUP,
        CONTROL_NAMES,
        CONTROL_NOTE,
        NO_CONTROL_NOTE,
        Comparison,
        member_loss_note,
    )

    changes = [Comparison.from_dict(c) for c in seeds["changes"]]
    against_control = [Comparison.from_dict(c) for c in seeds.get("control_changes", [])]
    lines = ["## What pruning changed", "",
             f"This model's level against the dense model, both trained once for each of {len(seeds['seeds'])} seeds "
             "and scored on the same examples: accuracy, attack success and the loss on members and on non-members "
             "tested once pooling the seeds over examples, MIA and extraction AUCs and canary exposure once per seed "
             "(no test pools them); verdicts after Holm's correction across the run report's tests."
             f"{member_loss_note({'': changes})}{CONTROL_NOTE if against_control else NO_CONTROL_NOTE}", ""]
    lines += [f"- {c.line()}" for c in changes]
    if against_control:
        lines += ["", f"**Against the control {CONTROL_GROUP}**", ""]
        lines += [f"- {c.line(names=CONTROL_NAMES)}" for c in against_control]
    return "\n".join(lines)


def _seeds_section(inputs: CardInputs) -> str:
    """Which seed this model is, which one the run publishes and why, and every metric over the seeds."""
    seeds = inputs.results.get("seeds")
    if not seeds:
        return ""
    this, published = seeds["this_seed"], seeds["published"]["seed"]
    which = "this model" if this == published else f"seed {published}, not this model"
    lines = ["## Across seeds", "",
             f"This model is seed {this} of {len(seeds['seeds'])} seeds ({', '.join(map(str, seeds['seeds']))}), "
             f"each a dense model and its pruned copy trained with the same recipe; the member split, evaluation "
             f"sample and canaries are those of split seed {seeds['split_seed']} in every seed. The run publishes "
             f"{which}: {seeds['published']['rule']}.", "",
             "| metric | dense: mean (sd, min-max, seeds) | pruned: mean (sd, min-max, seeds) |", "|---|---|---|"]
    for metric in dict.fromkeys([*seeds["dense"], *seeds["pruned"]]):
        cells = [_spread(seeds[kind].get(metric)) for kind in ("dense", "pruned")]
        lines.append(f"| {metric} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _spread(found: dict[str, Any] | None) -> str:
    if found is None:
        return ""
    if found["n"] == 1:
        return f"{found['mean']:.4g} (1 seed)"
    return f"{found['mean']:.4g} (sd {found['sd']:.2g}, {found['low']:.4g} to {found['high']:.4g}, {found['n']} seeds)"


def _results(inputs: CardInputs) -> str:
    c, quality = inputs.comparison, inputs.quality
    if c is None or quality is None:
        return ""
    latency = c["latency"]
    timed = bool(latency)
    head = f"| model | {c['metric']} | parameters |" + (f" latency ms (seq {latency.get('seq_len')}, batch "
                                                        f"{latency.get('batch_size', 1)}) |" if timed else "")
    rows = [("dense", c["dense"], c["dense_params"], latency.get("dense_ms")),
            ("pruned (this model)", c["pruned"], c["pruned_params"], latency.get("pruned_ms"))]
    lines = ["## Results", "", head, "|---|---|---|" + ("---|" if timed else "")]
    for name, value, params, ms in rows:
        lines.append(f"| {name} | {value:.4f} | {params:,} |" + (f" {ms:.1f} |" if timed else ""))
    where = (f" on {quality['n_examples']} `{quality['split']}` examples" if quality.get("n_examples") else
             (f" on `{inputs.trained_on}`'s evaluation split" if inputs.trained_on else ""))
    note = f"{c['metric'].capitalize()}{where}."
    if timed:
        note += " Latency: median CPU forward, dense and pruned timed interleaved."
    source = "hfprune_results.json" if inputs.results.get("pruned") else f"../{PRUNE_REPORT} (`hfprune prune`)"
    return "\n".join(lines + ["", f"{note} Source: {source}."])


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
                         f"{r.attack_success_rate.format()} | {'not audited' if other is None else f'{other:.3f}'} |")
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


def _per_layer(counts: list[int], total: int) -> str:
    """``2, 3, 4`` (of 4 each), or ``24 in each of 12 layers`` when all agree."""
    if len(set(counts)) == 1:
        return f"{counts[0]} of {total} in each of the {len(counts)} layers"
    return f"{', '.join(map(str, counts))} (of {total} each)"


def _procedure(inputs: CardInputs) -> str:
    """What the saved files show of how the model was pruned: structure, reduction, scoring, schedule, training."""
    s, r, p, res = inputs.structure, inputs.report, inputs.pruning, inputs.results
    lines = ["## Pruning procedure", "",
             f"- Kept per layer: attention heads {_per_layer([len(k) for k in s['kept_heads']], s['dense_num_heads'])}"
             f"; FFN neurons {_per_layer([len(k) for k in s['kept_neurons']], s['dense_ffn_size'])}."]
    if r:
        lines.append(f"- Removed: {r['heads_total'] - r['heads_kept']} of {r['heads_total']} attention heads and "
                     f"{r['neurons_total'] - r['neurons_kept']} of {r['neurons_total']} FFN neurons; parameters "
                     f"{r['params_dense']:,} -> {r['params']:,} (-{100 * r['param_sparsity']:.1f}%), transformer-layer "
                     f"FLOPs -{100 * r['flops_sparsity']:.1f}% (sequence length {r['seq_len']})"
                     + (f"; {100 * r['weight_sparsity']:.1f}% of the remaining weights zeroed"
                        if r.get("weight_sparsity") else "") + ".")
    if p:
        weights = (f", {100 * p['weight_sparsity']:.0f}% of remaining weights (`{p.get('weight_method')}`)"
                   if p.get("weight_sparsity") else "")
        lines.append(f"- Scoring: `{p.get('scoring')}` ({p.get('allocation')} allocation); target sparsity "
                     f"{100 * p.get('head_sparsity', 0):.0f}% of heads, {100 * p.get('ffn_sparsity', 0):.0f}% of FFN "
                     f"neurons{weights}.")
        lines.append(f"- Schedule: cubic ramp after {100 * p.get('warmup_ratio', 0):.0f}% warm-up, masks frozen "
                     f"for the last {100 * p.get('cooldown_ratio', 0):.0f}% of steps, updated every "
                     f"{p.get('mask_update_interval')} steps; pruned units physically removed at the end.")
    else:
        lines.append("- Scoring and schedule: not recorded (the folder has no pruning_config.json).")
    training, distill = res.get("training"), res.get("distillation")
    if training:
        settings = (f"(max length {training['max_length']}, batch {training['batch_size']}, learning rate "
                    f"{training['learning_rate']:g}, seed {training['seed']})")
        if training["dense_epochs"] == 0:  # the base model was the dense model (a recipe's dense_epochs: 0)
            lines.append(f"- Dense model: the base model as loaded, not fine-tuned; pruning: "
                         f"{epochs_text(training['prune_epochs'])} on {training['train_samples']} examples {settings}.")
        else:
            lines.append(f"- Dense model: fine-tuned {epochs_text(training['dense_epochs'])} on "
                         f"{training['train_samples']} examples {settings}; pruning: "
                         f"{epochs_text(training['prune_epochs'])} on the same examples.")
    if distill:
        lines.append(f"- Distillation from the dense model: {'on' if distill['enabled'] else 'off'}"
                     + (f" (alpha {distill['alpha']:g}, temperature {distill['temperature']:g})"
                        if distill["enabled"] else "") + ".")
    return "\n".join(lines)


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
    tokenizer = any((inputs.model_dir / name).is_file() for name in TOKENIZER_FILES)
    lines = ["## How to load", "", "With hfprune (`pip install hfprune`), the pruned shapes are rebuilt from "
             "`config.json`:", "", "```python", *(["from transformers import AutoTokenizer"] if tokenizer else []),
             "from hfprune import load_pruned", "", f'model = load_pruned("{repo_id}")',
             *([f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")'] if tokenizer else []), "```"]
    if not tokenizer:
        lines += ["", "No tokenizer was saved with this model: use the one of the model it was pruned from."]
    if inputs.plain_loadable:
        lines += ["", "Every layer keeps the widths `config.json` states, so plain `transformers` loads it too:", "",
                  "```python", f"from transformers import {cls}", "",
                  f'model = {cls}.from_pretrained("{repo_id}")', "```"]
    lines += ["", "Without hfprune at inference time: zero-pad the pruned model back to its dense shapes once (a "
              "removed head or neuron then contributes exactly nothing, so predictions are unchanged) and load that "
              "with plain `transformers`:", "", "```python", "from hfprune import export_dense, load_pruned",
              "", f'export_dense(load_pruned("{repo_id}"), "{DENSE_EXPORT_DIR}")', "",
              f"from transformers import {cls}", "", f'model = {cls}.from_pretrained("{DENSE_EXPORT_DIR}")', "```"]
    if dense_export:
        lines += ["", f"This repository also holds that export in `{DENSE_EXPORT_DIR}/`:", "", "```python",
                  f"from transformers import {cls}", "",
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
    sections = [_summary(inputs, repo_id), _changes(inputs), _seeds_section(inputs), _results(inputs),
                _audit_section(inputs),
                _procedure(inputs), _structure(inputs), _loading(inputs, repo_id, dense_export), _versions()]
    body = "\n\n".join(section for section in sections if section) + "\n"
    return ModelCard(f"---\n{card_data(inputs, repo_id).to_yaml()}\n---\n\n{body}")
