"""The pruning methods that scripts/bench_peers.py compares, behind one registry.

Every method gets the same ``Job``: the same fine-tuned dense model, the same JSONL slice of SST-2 train, the same
number of optimizer steps (one pass at the same batch size), learning rate, schedule and seed. It leaves in
``job.out_dir``: ``model/`` (the pruned model, in the method's own save format), ``probe.pt`` (a fixed input batch
and the logits of the in-memory model, for the reload checks) and ``info.json`` (wall time, steps, notes).

Peers whose packages live only in the benchmark's own venv (benchmarks/peers/.venv, made by
scripts/setup_peers_env.sh) run there, as a subprocess: ``python scripts/peers_methods.py JOB.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HF_FORMAT, HFPRUNE_FORMAT, PICKLE_FORMAT = "hf", "hfprune", "pickle"


@dataclasses.dataclass
class Job:
    """One method at one target, with the budget every method shares."""

    method: str
    dense_dir: str
    train_jsonl: str
    head_sparsity: float
    ffn_sparsity: float
    out_dir: str
    max_length: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-4
    epochs: float = 1.0
    seed: int = 42
    threads: int = 1
    warmup_ratio: float = 0.1  # fraction of steps before units are removed (hfprune, INC)
    cooldown_ratio: float = 0.2  # fraction of steps at the end with the final masks (hfprune, INC)
    calibration_batches: int = 4  # gradient batches for one-shot Taylor scores (Torch-Pruning)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Job:
        return cls(**json.loads(Path(path).read_text()))


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    label: str
    venv: str  # "main" (the project's venv) or "peers" (benchmarks/peers/.venv)
    save_format: str
    run: Callable[[Job], dict[str, Any]]


METHODS: dict[str, Method] = {}


def register(name: str, label: str, venv: str = "main", save_format: str = HFPRUNE_FORMAT):
    def decorate(run: Callable[[Job], dict[str, Any]]) -> Callable[[Job], dict[str, Any]]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        METHODS[name] = Method(name, label, venv, save_format, run)
        return run
    return decorate


# --- what every method shares ---------------------------------------------------------------------------------------


def load_dense(job: Job):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job.dense_dir)
    model = AutoModelForSequenceClassification.from_pretrained(job.dense_dir)
    return model, tokenizer


def train_slice(job: Job, tokenizer):
    import datasets

    from hfprune.training import tokenize_for_classification

    rows = [json.loads(line) for line in Path(job.train_jsonl).read_text().splitlines() if line.strip()]
    data = datasets.Dataset.from_list(rows)
    return tokenize_for_classification(data, tokenizer, ["sentence"], max_length=job.max_length)


def total_steps(job: Job, n_examples: int) -> int:
    return math.ceil(n_examples / job.batch_size) * math.ceil(job.epochs)


def make_trainer(job: Job, model, tokenizer, scratch: str, callbacks=(), trainer_cls=None, args_cls=None,
                 trainer_kwargs: dict[str, Any] | None = None, **extra_args):
    """The one training set-up: AdamW, peak lr ``job.learning_rate``, 10% linear warm-up, linear decay, weight decay
    0.01, ``job.batch_size``, ``job.epochs`` over the slice, ``job.seed``; dropout on (train mode)."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    trainer_cls = trainer_cls or Trainer
    args_cls = args_cls or TrainingArguments
    args = args_cls(output_dir=scratch, use_cpu=True, num_train_epochs=job.epochs,
                    per_device_train_batch_size=job.batch_size, learning_rate=job.learning_rate, warmup_steps=0.1,
                    weight_decay=0.01, save_strategy="no", eval_strategy="no", logging_steps=50, report_to="none",
                    seed=job.seed, data_seed=job.seed, dataloader_num_workers=0, disable_tqdm=True, **extra_args)
    return trainer_cls(model=model, args=args, train_dataset=train_slice(job, tokenizer), processing_class=tokenizer,
                       data_collator=DataCollatorWithPadding(tokenizer), callbacks=list(callbacks),
                       **(trainer_kwargs or {}))


def probe_batch(job: Job, tokenizer) -> dict[str, torch.Tensor]:
    """A fixed batch (the slice's first 16 sentences, padded) on which reloads must reproduce the logits."""
    rows = [json.loads(line) for line in Path(job.train_jsonl).read_text().splitlines()[:16]]
    return dict(tokenizer([r["sentence"] for r in rows], padding=True, truncation=True, max_length=job.max_length,
                          return_tensors="pt"))


def save_probe(job: Job, model, tokenizer) -> None:
    inputs = probe_batch(job, tokenizer)
    model.eval()
    with torch.inference_mode():
        logits = model(**inputs).logits
    torch.save({"inputs": inputs, "logits": logits}, Path(job.out_dir) / "probe.pt")


def save_pickled(job: Job, model, tokenizer) -> None:
    """The peers' own format: the whole module pickled (``torch.save(model)``, Torch-Pruning's documented way), and
    a ``save_pretrained`` copy beside it for the plain-``from_pretrained`` check."""
    target = Path(job.out_dir) / "model"
    target.mkdir(parents=True, exist_ok=True)
    torch.save(model, target / "model.pt")
    tokenizer.save_pretrained(target)
    model.save_pretrained(Path(job.out_dir) / "save_pretrained")


def bert_layers(model) -> list:
    return list(model.bert.encoder.layer)


# --- hfprune ------------------------------------------------------------------------------------------------------


def _hfprune(job: Job, scoring: str, distill: bool = False, ffn_round_to: int = 1) -> dict[str, Any]:
    from hfprune.pruning import MovementPruningCallback, PruningConfig, save_pruned

    model, tokenizer = load_dense(job)
    config = PruningConfig(head_sparsity=job.head_sparsity, ffn_sparsity=job.ffn_sparsity, scoring=scoring,
                           warmup_ratio=job.warmup_ratio, cooldown_ratio=job.cooldown_ratio, seed=job.seed,
                           ffn_round_to=ffn_round_to)
    kwargs: dict[str, Any] = {"callbacks": [MovementPruningCallback(config)]}
    if distill:
        from hfprune.distill import DistillationArguments, DistillationTrainer

        kwargs.update(trainer_cls=DistillationTrainer, args_cls=DistillationArguments, distill_alpha=0.5,
                      distill_temperature=2.0, trainer_kwargs={"teacher_model": copy.deepcopy(model).eval()})
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model, tokenizer, scratch, **kwargs)
        trainer.train()
    save_probe(job, model, tokenizer)
    save_pruned(model, Path(job.out_dir) / "model", pruning_config=config, processing_class=tokenizer, overwrite=True)
    return {"steps": trainer.state.global_step, "notes": f"PruningConfig {config.to_dict()}"}


# name -> (label, _hfprune keyword arguments): the gradual hfprune rows differ only in these
HFPRUNE_GRADUAL = {
    "hfprune-movement": ("hfprune movement", {"scoring": "movement"}),
    "hfprune-movement-kd": ("hfprune movement + distillation", {"scoring": "movement", "distill": True}),
    "hfprune-movement-r32": ("hfprune movement, FFN widths multiple of 32",
                             {"scoring": "movement", "ffn_round_to": 32}),
    "hfprune-magnitude": ("hfprune magnitude", {"scoring": "magnitude"}),
    "hfprune-random": ("hfprune random", {"scoring": "random"}),
    "hfprune-head-importance": ("hfprune head_importance", {"scoring": "head_importance"}),
    "hfprune-snip-momentum": ("hfprune snip_momentum", {"scoring": "snip_momentum"}),
    "hfprune-snip-momentum-kd": ("hfprune snip_momentum + distillation", {"scoring": "snip_momentum", "distill": True}),
}
for _name, (_label, _kwargs) in HFPRUNE_GRADUAL.items():
    register(_name, _label)(functools.partial(_hfprune, **_kwargs))


@register("hfprune-oneshot-taylor", "hfprune one-shot head_importance (Taylor), per layer, + fine-tune")
def hfprune_oneshot_taylor(job: Job) -> dict[str, Any]:
    """The Torch-Pruning-Taylor recipe with hfprune's parts: ``hfprune.prune`` scores heads and neurons by
    |dL/d gate| (Michel et al.) on the same calibration batches, removes the same fraction in every layer and
    compacts; then the smaller model is fine-tuned for the whole budget."""
    from hfprune.pruning import PruningConfig, prune, save_pruned

    model, tokenizer = load_dense(job)
    config = PruningConfig(head_sparsity=job.head_sparsity, ffn_sparsity=job.ffn_sparsity, scoring="head_importance",
                           allocation="per_layer", seed=job.seed)
    started = time.perf_counter()
    prune(model, config, calibration_batches(job, tokenizer))
    one_shot = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model, tokenizer, scratch)
        trainer.train()
    save_probe(job, model, tokenizer)
    save_pruned(model, Path(job.out_dir) / "model", pruning_config=config, processing_class=tokenizer, overwrite=True)
    return {"steps": trainer.state.global_step, "one_shot_seconds": one_shot,
            "notes": f"hfprune.prune, head_importance scores from {job.calibration_batches} gradient batches, "
                     "per layer, then fine-tuned"}


def calibration_batches(job: Job, tokenizer) -> list[dict[str, torch.Tensor]]:
    """The slice's first ``job.calibration_batches`` batches, collated with labels (the same for every method)."""
    from transformers import DataCollatorWithPadding

    data = train_slice(job, tokenizer)
    collate = DataCollatorWithPadding(tokenizer)  # renames label -> labels
    count = min(job.calibration_batches, math.ceil(len(data) / job.batch_size))
    return [collate([dict(r) for r in data.select(range(i * job.batch_size, min(len(data), (i + 1) * job.batch_size)))])
            for i in range(count)]


# --- Torch-Pruning (DepGraph) ----------------------------------------------------------------------------------------


def _torch_pruning(job: Job, importance: str) -> dict[str, Any]:
    """One-shot DepGraph pruning of whole heads (q/k/v out-channels by head, attention-output in-channels follow) and
    FFN neurons (intermediate out-channels, FFN-output in-channels follow), uniform per layer (Torch-Pruning's
    default local pruning, as in its BERT example); the hidden width is kept by ignoring every layer whose output is
    the residual stream. Then fine-tuned for the shared budget."""
    import torch_pruning as tp
    from transformers.models.bert.modeling_bert import BertSelfAttention

    model, tokenizer = load_dense(job)
    started = time.perf_counter()
    model.eval()
    example = probe_batch(job, tokenizer)
    attentions = [m for m in model.modules() if isinstance(m, BertSelfAttention)]
    num_heads = {linear: a.num_attention_heads for a in attentions for linear in (a.query, a.key, a.value)}
    ignored = [model.classifier, model.bert.pooler.dense]
    for layer in bert_layers(model):
        ignored += [layer.attention.output.dense, layer.output.dense]
    if importance == "taylor":
        scorer = tp.importance.GroupTaylorImportance()
        _accumulate_gradients(job, model, tokenizer)
    else:
        scorer = tp.importance.GroupMagnitudeImportance(p=2)
    pruner = tp.pruner.MetaPruner(
        model, example_inputs=example, importance=scorer, pruning_ratio=job.ffn_sparsity, ignored_layers=ignored,
        num_heads=num_heads, prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=job.head_sparsity,
        output_transform=lambda out: out.logits.sum(), global_pruning=False)
    for group in pruner.step(interactive=True):
        group.prune()
    for attention in attentions:
        attention.num_attention_heads = pruner.num_heads[attention.query]
        attention.all_head_size = attention.query.out_features
    model.zero_grad(set_to_none=True)
    hidden = {layer.output.dense.out_features for layer in bert_layers(model)}
    if hidden != {model.config.hidden_size}:
        raise RuntimeError(f"Torch-Pruning changed the hidden width: {hidden}")
    one_shot = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model, tokenizer, scratch)
        trainer.train()
    save_probe(job, model, tokenizer)
    save_pickled(job, model, tokenizer)
    return {"steps": trainer.state.global_step, "one_shot_seconds": one_shot,
            "notes": f"torch_pruning MetaPruner, {type(scorer).__name__}, local (per layer), prune_num_heads"
                     + (f", Taylor scores from {job.calibration_batches} gradient batches" if importance == "taylor"
                        else "")}


def _accumulate_gradients(job: Job, model, tokenizer) -> None:
    model.zero_grad(set_to_none=True)
    for batch in calibration_batches(job, tokenizer):
        model(**batch).loss.backward()


@register("tp-magnitude", "Torch-Pruning GroupMagnitudeImportance", venv="peers", save_format=PICKLE_FORMAT)
def tp_magnitude(job: Job) -> dict[str, Any]:
    return _torch_pruning(job, "magnitude")


@register("tp-taylor", "Torch-Pruning GroupTaylorImportance", venv="peers", save_format=PICKLE_FORMAT)
def tp_taylor(job: Job) -> dict[str, Any]:
    return _torch_pruning(job, "taylor")


# --- Intel Neural Compressor 3.7.1 ----------------------------------------------------------------------------------


@register("inc-snip-momentum", "INC 3.7.1 snip_momentum + model slim", venv="peers", save_format=PICKLE_FORMAT)
def inc_snip_momentum(job: Job) -> dict[str, Any]:
    """INC's structured recipe for BERT: FFN "channelx1" and "mha" (whole heads) patterns from
    ``parse_auto_slim_config``, snip_momentum scores, global scope, sparsity ramped between the same warm-up and
    cool-down as hfprune; its hooks wrap the Trainer's optimizer; then ``model_slim`` removes the pruned channels and
    heads (its default rounds FFN widths to multiples of 32)."""
    from neural_compressor.compression.pruner import prepare_pruning
    from neural_compressor.compression.pruner.model_slim import model_slim, parse_auto_slim_config
    from neural_compressor.config import WeightPruningConfig

    model, tokenizer = load_dense(job)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model, tokenizer, scratch)
        steps = total_steps(job, len(trainer.train_dataset))
        configs = parse_auto_slim_config(model, ffn2_sparsity=job.ffn_sparsity, mha_sparsity=job.head_sparsity)
        config = WeightPruningConfig(
            configs, pruning_type="snip_momentum", pruning_scope="global", start_step=int(job.warmup_ratio * steps),
            end_step=max(int(job.warmup_ratio * steps), steps - 1 - int(job.cooldown_ratio * steps)),
            pruning_frequency=max(1, steps // 20))
        trainer.create_optimizer()
        prepare_pruning(model, config, optimizer=trainer.optimizer)
        try:
            trainer.train()
        finally:
            _remove_inc_hooks(model, trainer.optimizer)
    model.eval()
    with torch.inference_mode():
        masked = model(**probe_batch(job, tokenizer)).logits
    model = model_slim(model)
    save_probe(job, model, tokenizer)
    slim_diff = float((torch.load(Path(job.out_dir) / "probe.pt")["logits"] - masked).abs().max())
    save_pickled(job, model, tokenizer)
    return {"steps": trainer.state.global_step, "slim_max_logit_change": slim_diff,
            "notes": f"snip_momentum, patterns {[c['pattern'] for c in configs]}, global scope, pruning steps "
                     f"{config.weight_compression.start_step}-{config.weight_compression.end_step} every "
                     f"{config.weight_compression.pruning_frequency}, then model_slim (FFN widths rounded to 32)"}


def _remove_inc_hooks(model, optimizer) -> None:
    """INC patches torch.save, the optimizer's step and a forward hook; undo them so the module pickles cleanly."""
    if hasattr(torch, "orig_save"):
        torch.save = torch.orig_save
    handle = getattr(model, "inc_hook_handle", None)
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.remove()
    for owner in (model, optimizer, getattr(optimizer, "optimizer", None)):
        for name in ("prunings", "inc_hook_handle"):
            if owner is not None and hasattr(owner, name):
                with contextlib.suppress(Exception):
                    delattr(owner, name)


# --- torch.nn.utils.prune: the no-speedup reference ------------------------------------------------------------------


@register("torch-l1-unstructured", "torch.nn.utils.prune global L1 unstructured", save_format=HF_FORMAT)
def torch_l1_unstructured(job: Job) -> dict[str, Any]:
    """Global L1 unstructured pruning of the Q/K/V/O and FFN weights, removing as many weights as the structured
    target removes parameters; masks stay on (reparametrised) while fine-tuning, then are made permanent."""
    import torch.nn.utils.prune as torch_prune

    from hfprune.pruning import PruningConfig, prune

    model, tokenizer = load_dense(job)
    reference = copy.deepcopy(model)
    dense_params = sum(p.numel() for p in reference.parameters())
    prune(reference, PruningConfig(head_sparsity=job.head_sparsity, ffn_sparsity=job.ffn_sparsity, scoring="random",
                                   allocation="per_layer"))
    amount = dense_params - sum(p.numel() for p in reference.parameters())
    targets = []
    for layer in bert_layers(model):
        attention = layer.attention
        for linear in (attention.self.query, attention.self.key, attention.self.value, attention.output.dense,
                       layer.intermediate.dense, layer.output.dense):
            targets.append((linear, "weight"))
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=amount)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model, tokenizer, scratch)
        trainer.train()
    for module, name in targets:
        torch_prune.remove(module, name)
    save_probe(job, model, tokenizer)
    target = Path(job.out_dir) / "model"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return {"steps": trainer.state.global_step, "weights_zeroed": amount,
            "notes": "global_unstructured(L1Unstructured) over Q/K/V/O/FFN weights, amount = parameters the "
                     "structured target removes"}


# --- running one job ------------------------------------------------------------------------------------------------


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` in this process and write its info.json; returns it."""
    from hfprune.utils.io import atomic_write_json

    torch.set_num_threads(job.threads)
    torch.manual_seed(job.seed)
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    method = METHODS[job.method]
    started = time.perf_counter()
    info = method.run(job)
    info.update(method=job.method, save_format=method.save_format, pruning_seconds=time.perf_counter() - started,
                versions=_versions())
    atomic_write_json(Path(job.out_dir) / "info.json", info)
    return info


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "numpy", "torch-pruning", "neural-compressor"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_job(Job.load(sys.argv[1]))
