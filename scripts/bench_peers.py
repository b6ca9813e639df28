"""hfprune side by side with its peers on MiniLM / SST-2: accuracy, size, CPU latency, pruning time and reloads.

One dense model (the embedded all-MiniLM-L6-v2 fine-tuned here on a fixed SST-2 train slice, cached in OUT/dense),
then every method x target (heads / FFN neurons removed: 50/50 and 75/75) gets the same budget: one pass over the
same slice, same batch size, learning rate, schedule and seed (scripts/peers_methods.py has the methods). Each
method runs as a subprocess (Torch-Pruning and Intel Neural Compressor in benchmarks/peers/.venv, made by
scripts/setup_peers_env.sh); this process then evaluates every pruned model on the full SST-2 dev set, counts
parameters and FLOPs, times it against the dense model (seq 128, batch 1 and 32, interleaved rounds, medians) and
checks that the saved model reloads with identical logits. A method that fails gets a row with its error.

Resumable: a finished row is OUT/rows/<method>-h<H>-f<F>/row.json (written atomically) and is not recomputed.

    bash scripts/setup_peers_env.sh && python scripts/bench_peers.py --out benchmarks/peers   # full run
    (measured: 74.7 min for every default row, dense fine-tune included, on 2 idle cores)
    python scripts/bench_peers.py --quick --out /tmp/peers-quick                            # every row, tiny budget
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_methods import HF_FORMAT, HFPRUNE_FORMAT, METHODS, PICKLE_FORMAT, Job  # noqa: E402

from hfprune.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METHODS = ["hfprune-movement", "hfprune-movement-kd", "hfprune-magnitude", "hfprune-random",
                   "hfprune-head-importance", "hfprune-snip-momentum", "hfprune-snip-momentum-kd",
                   "hfprune-movement-r32", "hfprune-oneshot-taylor", "tp-magnitude", "tp-taylor",
                   "inc-snip-momentum", "torch-l1-unstructured"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/peers"))
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--targets", nargs="+", default=["0.5,0.5", "0.75,0.75"], help="head,ffn sparsity pairs")
    parser.add_argument("--train-samples", type=int, default=3000, help="the SST-2 train slice (dense and pruning)")
    parser.add_argument("--dense-epochs", type=float, default=2.0, help="dense fine-tuning epochs over the slice")
    parser.add_argument("--epochs", type=float, default=1.0, help="pruning budget: passes over the slice")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-samples", type=int, default=None, help="first N dev sentences (default: all 872)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds per batch size")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--timing-threads", type=int, default=2)
    parser.add_argument("--train-threads", type=int, default=1)
    parser.add_argument("--peers-python", default=str(ROOT / "benchmarks/peers/.venv/bin/python"))
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the rows already finished; run nothing (missing rows are listed)")
    parser.add_argument("--quick", action="store_true",
                        help="every row on a tiny budget: 64 train sentences, 128 dev, 2 rounds, batches 1 and 8")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_samples, args.dense_epochs, args.eval_samples = 64, 1.0, 128
        args.rounds, args.batches = 2, [1, 8]
    args.targets = [tuple(float(x) for x in pair.split(",")) for pair in args.targets]
    args.command = "python scripts/bench_peers.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    return args


# --- data and the dense model ---------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Any]]:
    """The dense model (fine-tuned once, then reused) and the train slice as JSONL (the rows it was trained on)."""
    from hfprune.data import load_dataset
    from hfprune.training import FinetuneConfig, contains_model, drop_unlabelled, finetune_classifier

    dense_dir = args.out / "dense"
    config = FinetuneConfig(train_samples=args.train_samples, epochs=args.dense_epochs, max_length=args.max_length,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                            threads=args.train_threads, output_dir=str(dense_dir))
    started = time.perf_counter()
    if not contains_model(dense_dir):
        finetune_classifier(config)
    seconds = time.perf_counter() - started
    slice_path = args.out / "data" / "train_slice.jsonl"
    if not slice_path.is_file():
        # the same shuffle and selection finetune_classifier used
        train = drop_unlabelled(load_dataset("glue/sst2")["train"]).shuffle(seed=args.seed)
        train = train.select(range(min(args.train_samples, len(train))))
        lines = [json.dumps({"sentence": r["sentence"], "label": int(r["label"])}) for r in train]
        slice_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(slice_path, "\n".join(lines) + "\n")
    return dense_dir, slice_path, {"dense_finetune": config.to_dict(), "dense_finetune_seconds_this_run": seconds}


def dev_set(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    from hfprune.data import load_dataset

    dev = load_dataset("glue/sst2")["validation"]
    n = len(dev) if args.eval_samples is None else min(args.eval_samples, len(dev))
    return list(dev["sentence"][:n]), [int(x) for x in dev["label"][:n]]


# --- measuring one model --------------------------------------------------------------------------------------------


def accuracy(model, tokenizer, sentences: list[str], labels: list[int], max_length: int) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(sentences), 64):
            batch = tokenizer(sentences[start:start + 64], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            predictions = model(**batch).logits.argmax(-1)
            correct += int((predictions == torch.tensor(labels[start:start + 64])).sum())
    return correct / len(sentences)


def structure(model, dense_config) -> dict[str, Any]:
    """Per-layer heads and FFN widths read off the modules, parameters (all and nonzero) and layer FLOPs."""
    from hfprune.pruning.stats import model_flops

    head_dim = dense_config.hidden_size // dense_config.num_attention_heads
    heads = [layer.attention.self.query.out_features // head_dim for layer in model.bert.encoder.layer]
    ffn = [layer.intermediate.dense.out_features for layer in model.bert.encoder.layer]
    return {"heads_per_layer": heads, "ffn_per_layer": ffn,
            "params": sum(p.numel() for p in model.parameters()),
            "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters()),
            "flops": model_flops(model, 128)}  # read off the (Torch-Pruning or hfprune) pruned weights


def timings(dense, pruned, args: argparse.Namespace) -> dict[str, Any]:
    """Dense and pruned forwards interleaved (rotating order each round), 2 threads; medians and the median of the
    per-round ratios. ``fixed_ms``: the parts pruning does not touch (embeddings, pooler, classifier), timed on the
    dense model, so that the FLOPs ideal can be corrected for them (Amdahl)."""
    from hfprune.training import torch_threads
    from hfprune.utils.timing import interleaved_timings

    result = {}
    with torch_threads(args.timing_threads):
        for batch in args.batches:
            generator = torch.Generator().manual_seed(batch)
            inputs = {"input_ids": torch.randint(1000, 20000, (batch, args.seq_len), generator=generator),
                      "attention_mask": torch.ones(batch, args.seq_len, dtype=torch.long)}
            times = interleaved_timings({"dense": dense, "pruned": pruned}, inputs, args.rounds)
            ratios = [d / p for d, p in zip(times["dense"], times["pruned"], strict=True)]
            result[str(batch)] = {"dense_ms": 1000 * statistics.median(times["dense"]),
                                  "pruned_ms": 1000 * statistics.median(times["pruned"]),
                                  "speedup": statistics.median(ratios), "fixed_ms": fixed_ms(dense, inputs, args)}
    return result


def fixed_ms(dense, inputs: dict[str, torch.Tensor], args: argparse.Namespace) -> float:
    def outside_layers() -> None:
        hidden = dense.bert.embeddings(input_ids=inputs["input_ids"])
        dense.classifier(dense.bert.pooler(hidden))

    samples = []
    with torch.inference_mode():
        outside_layers()
        for _ in range(max(3, args.rounds)):
            started = time.perf_counter()
            outside_layers()
            samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


def load_saved(row_dir: Path, save_format: str):
    """The pruned model through its method's own loader."""
    from transformers import AutoModelForSequenceClassification

    from hfprune.pruning import load_pruned

    model_dir = row_dir / "model"
    if save_format == HFPRUNE_FORMAT:
        return load_pruned(model_dir)
    if save_format == PICKLE_FORMAT:
        return torch.load(model_dir / "model.pt", weights_only=False).eval()
    if save_format == HF_FORMAT:
        return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    raise ValueError(f"unknown save format {save_format!r}")


def reload_checks(row_dir: Path, save_format: str, model) -> dict[str, Any]:
    """Max |logit difference| against the in-memory model at the end of pruning (probe.pt): through the method's
    own loader, and through plain ``from_pretrained`` (the model folder, or the save_pretrained copy of a pickled
    model); for hfprune also its zero-padded export. An error is recorded as the error message."""
    from transformers import AutoModelForSequenceClassification

    probe = torch.load(row_dir / "probe.pt")
    checks: dict[str, Any] = {"own_loader": _logit_diff(model, probe)}
    plain_dir = row_dir / ("save_pretrained" if save_format == PICKLE_FORMAT else "model")
    try:
        plain = AutoModelForSequenceClassification.from_pretrained(plain_dir).eval()
        checks["plain_from_pretrained"] = _logit_diff(plain, probe)
    except Exception as error:  # noqa: BLE001 - the failure is the measurement
        checks["plain_from_pretrained"] = _first_line(error)
    if save_format == HFPRUNE_FORMAT:
        from hfprune.pruning import export_dense

        exported = row_dir / "export_dense"
        export_dense(model, exported, overwrite=True)
        checks["export_dense_from_pretrained"] = _logit_diff(
            AutoModelForSequenceClassification.from_pretrained(exported).eval(), probe)
    return checks


def _logit_diff(model, probe: dict[str, Any]) -> float:
    with torch.inference_mode():
        return float((model(**probe["inputs"]).logits - probe["logits"]).abs().max())


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0][:300]


def gemm_widths(args: argparse.Namespace) -> dict[str, Any]:
    """One MiniLM FFN (384 -> width -> 384, GELU between) timed at widths around 384 (what 75% FFN pruning keeps) and
    768 (50%), at batch 1 and the largest batch (seq 128): milliseconds per forward and GFLOP/s, to see whether odd
    widths cost more than their FLOPs. The widths take turns within each round, like the model timings."""
    from hfprune.training import torch_threads

    widths = [w for centre in (384, 768) for w in range(centre - 8, centre + 9)]
    result: dict[str, Any] = {}
    with torch_threads(args.timing_threads), torch.inference_mode():
        for batch in sorted({1, max(args.batches)}):
            x = torch.randn(batch * args.seq_len, 384)
            layers = {w: (torch.nn.Linear(384, w), torch.nn.Linear(w, 384)) for w in widths}
            samples: dict[int, list[float]] = {w: [] for w in widths}
            for _ in range(max(5, args.rounds)):
                for w, (up, down) in layers.items():
                    started = time.perf_counter()
                    down(torch.nn.functional.gelu(up(x)))
                    samples[w].append(time.perf_counter() - started)
            result[str(batch)] = {str(w): {"ms": 1000 * statistics.median(v),
                                           "gflops": 4 * x.shape[0] * 384 * w / statistics.median(v) / 1e9}
                                  for w, v in samples.items()}
    return result


# --- rows -----------------------------------------------------------------------------------------------------------


def row_dir_of(args: argparse.Namespace, method: str, target: tuple[float, float]) -> Path:
    return args.out / "rows" / f"{method}-h{target[0]:g}-f{target[1]:g}"


def run_method(args: argparse.Namespace, job: Job, row_dir: Path) -> dict[str, Any]:
    """The method in its own process and venv; its log goes to row_dir/log.txt."""
    method = METHODS[job.method]
    python = sys.executable if method.venv == "main" else args.peers_python
    if not Path(python).is_file():
        raise RuntimeError(f"{python} not found: run scripts/setup_peers_env.sh to create the peers' venv")
    job_path = row_dir / "job.json"
    atomic_write_json(job_path, dataclasses.asdict(job))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with open(row_dir / "log.txt", "w") as log:
        code = subprocess.call([python, str(Path(__file__).with_name("peers_methods.py")), str(job_path)],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if code != 0:
        tail = (row_dir / "log.txt").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{method.label} exited with {code}: " + " | ".join(line.strip() for line in tail))
    return json.loads((row_dir / "info.json").read_text())


def run_row(args, method: str, target, dense_dir: Path, slice_path: Path, dense, dense_tokenizer,
            dev: tuple[list[str], list[int]]) -> dict[str, Any]:
    row_dir = row_dir_of(args, method, target)
    row_dir.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"method": method, "label": METHODS[method].label, "head_sparsity": target[0],
                           "ffn_sparsity": target[1]}
    job = Job(method=method, dense_dir=str(dense_dir.resolve()), train_jsonl=str(slice_path.resolve()),
              head_sparsity=target[0], ffn_sparsity=target[1], out_dir=str(row_dir.resolve()),
              max_length=args.max_length, batch_size=args.batch_size, learning_rate=args.learning_rate,
              epochs=args.epochs, seed=args.seed, threads=args.train_threads)
    try:
        row["info"] = run_method(args, job, row_dir)
        model = load_saved(row_dir, METHODS[method].save_format)
        row["reload_max_abs_logit_diff"] = reload_checks(row_dir, METHODS[method].save_format, model)
        row["accuracy"] = accuracy(model, dense_tokenizer, *dev, args.max_length)
        row.update(structure(model, dense.config))
        row["timing"] = timings(dense, model, args)
    except Exception as error:  # noqa: BLE001 - a peer that cannot run gets a row saying why
        row["error"] = _first_line(error) if "exited with" not in str(error) else str(error)[:600]
    row["load_average"] = os.getloadavg()
    return row


def dense_row(args, dense, tokenizer, dev, extra: dict[str, Any]) -> dict[str, Any]:
    path = args.out / "rows" / "dense" / "row.json"
    if path.is_file():
        return json.loads(path.read_text())
    row = {"method": "dense", "label": "dense (fine-tuned, not pruned)", "head_sparsity": 0.0, "ffn_sparsity": 0.0,
           "accuracy": accuracy(dense, tokenizer, *dev, args.max_length), **structure(dense, dense.config),
           "timing": timings(dense, copy.deepcopy(dense), args), **extra}
    atomic_write_json(path, row)
    return row


def recorded_rows(args: argparse.Namespace) -> dict[str, Any]:
    """--report-only: the report from the row files alone (no model is loaded or trained); absent rows say so."""
    dense_path = args.out / "rows" / "dense" / "row.json"
    if not dense_path.is_file():
        raise SystemExit(f"{dense_path}: no dense row recorded yet; run without --report-only first")
    rows = [json.loads(dense_path.read_text())]
    for target in args.targets:
        for method in args.methods:
            path = row_dir_of(args, method, target) / "row.json"
            rows.append(json.loads(path.read_text()) if path.is_file() else {
                "method": method, "label": METHODS[method].label, "head_sparsity": target[0],
                "ffn_sparsity": target[1], "missing": True})
    gemm_path = args.out / "gemm_widths.json"
    gemm = json.loads(gemm_path.read_text()) if gemm_path.is_file() else None
    return {"command": args.command, "rows": rows, "settings": settings(args), "machine": machine(),
            "gemm_widths": gemm}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if args.report_only:
        return recorded_rows(args)
    torch.set_num_threads(args.train_threads)
    dense_dir, slice_path, extra = prepare(args)
    dense = AutoModelForSequenceClassification.from_pretrained(dense_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(dense_dir)
    dev = dev_set(args)
    rows = [dense_row(args, dense, tokenizer, dev, extra)]
    for target in args.targets:
        for method in args.methods:
            path = row_dir_of(args, method, target) / "row.json"
            if path.is_file():
                rows.append(json.loads(path.read_text()))
                continue
            started = time.perf_counter()
            row = run_row(args, method, target, dense_dir, slice_path, dense, tokenizer, dev)
            row["row_seconds"] = time.perf_counter() - started
            atomic_write_json(path, row)
            print(summary_line(row), flush=True)
            rows.append(row)
    gemm_path = args.out / "gemm_widths.json"
    if not gemm_path.is_file():
        atomic_write_json(gemm_path, gemm_widths(args))
    gemm = json.loads(gemm_path.read_text()) if gemm_path.is_file() else None
    return {"command": args.command, "rows": rows, "settings": settings(args), "machine": machine(),
            "gemm_widths": gemm}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("train_samples", "dense_epochs", "epochs", "learning_rate", "batch_size", "max_length", "seed",
            "eval_samples", "rounds", "batches", "seq_len", "timing_threads", "train_threads", "quick")
    return {k: getattr(args, k) for k in keys}


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "torch": torch.__version__, "python": platform.python_version()}


def summary_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['method']} {row['head_sparsity']}/{row['ffn_sparsity']}: ERROR {row['error'][:200]}"
    speed = ", ".join(f"b{b} {t['speedup']:.2f}x" for b, t in row["timing"].items())
    return (f"{row['method']} {row['head_sparsity']}/{row['ffn_sparsity']}: acc {row['accuracy']:.4f}, "
            f"params {row['params']:,}, {speed}, {row['info']['pruning_seconds']:.0f} s")


# --- report ---------------------------------------------------------------------------------------------------------


def _reload_cell(value: Any) -> str:
    if isinstance(value, float):  # transformers 5 re-initialises mismatched shapes with a warning, not an error
        return "identical" if value == 0 else (f"same (max diff {value:.0e})" if value < 1e-4
                                               else f"loads, wrong logits (max diff {value:.2g})")
    return "fails" if value else "-"


def to_markdown(payload: dict[str, Any]) -> str:
    rows, s = payload["rows"], payload["settings"]
    dense = next(r for r in rows if r["method"] == "dense")
    batches = [str(b) for b in s["batches"]]
    lines = [f"Command: `{payload['command']}`", "",
             f"MiniLM (all-MiniLM-L6-v2) fine-tuned on {s['train_samples']} SST-2 train sentences "
             f"({s['dense_epochs']:g} epochs); every method then gets {s['epochs']:g} pass over the same sentences "
             f"(batch {s['batch_size']}, lr {s['learning_rate']:g}, seed {s['seed']}, {s['train_threads']} thread). "
             f"Accuracy on {'all 872' if s['eval_samples'] is None else s['eval_samples']} SST-2 dev sentences. "
             f"Latency: seq {s['seq_len']}, {s['timing_threads']} threads, dense and pruned interleaved, "
             f"{s['rounds']} rounds, medians. FLOPs: encoder layers at seq 128; ideal = the FLOPs ratio.", "",
             "| method | heads/FFN removed | dev acc | params | FLOPs | "
             + " | ".join(f"b{b} speedup | b{b} measured/ideal" for b in batches)
             + " | pruning wall s | reload: own loader | reload: plain from_pretrained |",
             "|---|---|---|---|---|" + "---|---|" * len(batches) + "---|---|---|"]
    for r in rows:
        target = f"{r['head_sparsity']:.0%} / {r['ffn_sparsity']:.0%}"
        if r.get("missing"):
            lines.append(f"| {r['label']} | {target} | not measured: the run stopped before this row |")
            continue
        if "error" in r:
            lines.append(f"| {r['label']} | {target} | cannot run: {r['error'][:300].replace('|', '/')} |")
            continue
        ideal = dense["flops"] / r["flops"]
        cells = []
        for b in batches:
            t = r["timing"][b]
            cells += [f"{t['speedup']:.2f}x", f"{t['speedup'] / ideal:.2f} (ideal {ideal:.2f}x)"]
        reload = r.get("reload_max_abs_logit_diff", {})
        plain = reload.get("plain_from_pretrained")
        plain_cell = _reload_cell(plain)
        if "export_dense_from_pretrained" in reload:
            plain_cell += f"; zero-padded export: {_reload_cell(reload['export_dense_from_pretrained'])}"
        seconds = r.get("info", {}).get("pruning_seconds")
        lines.append(f"| {r['label']} | {target} | {r['accuracy']:.4f} | {r['params'] / 1e6:.2f}M "
                     f"({r['nonzero_params'] / 1e6:.2f}M nonzero) | {r['flops'] / 1e9:.2f}G | " + " | ".join(cells)
                     + f" | {'-' if seconds is None else f'{seconds:.0f}'} | {_reload_cell(reload.get('own_loader'))}"
                     f" | {plain_cell} |")
    lines += ["", "Per-layer widths kept (heads; FFN neurons). The time of the parts pruning does not touch outside "
              "the layers (embeddings, pooler, classifier) is in results.json (`fixed_ms`); the larger fixed part "
              "inside the layers (layer norms, residual adds, per-op dispatch) is measured by scripts/bench_speed.py "
              "(`floor_ms`).", "",
              "| method | heads/FFN removed | heads per layer | FFN per layer |", "|---|---|---|---|"]
    for r in rows:
        if "error" in r or r.get("missing") or r["method"] == "dense":
            continue
        lines.append(f"| {r['label']} | {r['head_sparsity']:.0%} / {r['ffn_sparsity']:.0%} | {r['heads_per_layer']} "
                     f"| {r['ffn_per_layer']} |")
    lines += gemm_markdown(payload.get("gemm_widths"))
    m = payload["machine"]
    lines += ["", f"Machine: {m['cores']} cores ({m['cpu']}), torch {m['torch']}, load average at the end "
              f"{', '.join(f'{x:.2f}' for x in m['load_average_at_end'])} (each row records its own)."]
    return "\n".join(lines) + "\n"


def gemm_markdown(gemm: dict[str, Any] | None) -> list[str]:
    if not gemm:
        return []
    lines = ["", "One FFN block (384 -> width -> 384) alone, GFLOP/s by width (seq 128):", "",
             "| batch | " + " | ".join(next(iter(gemm.values()))) + " |",
             "|---|" + "---|" * len(next(iter(gemm.values())))]
    for batch, by_width in gemm.items():
        lines.append(f"| {batch} | " + " | ".join(f"{v['gflops']:.0f}" for v in by_width.values()) + " |")
    return lines


def plot(payload: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in payload["rows"] if "error" not in r and not r.get("missing") and r["method"] != "dense"]
    batches = [str(b) for b in payload["settings"]["batches"]]
    figure, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.5), squeeze=False)
    for axis, batch in zip(axes[0], batches, strict=True):
        for r in rows:
            marker = "o" if r["method"].startswith("hfprune") else "s"
            axis.scatter(r["timing"][batch]["speedup"], r["accuracy"], marker=marker)
            axis.annotate(f"{r['method']} {r['head_sparsity']:g}", (r["timing"][batch]["speedup"], r["accuracy"]),
                          fontsize=6)
        axis.set(xlabel=f"measured speedup vs dense (batch {batch}, seq 128)", ylabel="SST-2 dev accuracy",
                 title=f"accuracy vs speed, batch {batch}")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "accuracy_vs_speedup.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    payload = run(args)
    payload["wall_time_s_this_invocation"] = round(time.time() - started, 1)
    atomic_write_json(args.out / "results.json", payload)
    atomic_write_text(args.out / "results.md", to_markdown(payload))
    plot(payload, args.out)
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
