"""Helpers shared by several test files: the tiny BERT (MiniLM's tokenizer, so SST-2 sentences tokenise) and the
recipe built on it, a pruned model with known card results, and a loopback Hub. The fixtures built on them are in
``conftest.py``; test files import these, never each other."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from conftest import TINY_ARCHS, TINY_DECODERS

from hfprune.recipes.schema import Recipe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO_ID = "alice/minilm-sst2-pruned"
ACCURACY = 0.8125
# constructed attack log: 3 flipped, 1 survived, 1 already wrong -> success rate 3 / 4
OUTCOMES = ["successful", "successful", "successful", "failed", "skipped"]
# members score higher except 0.6 < 0.65: 15 of 16 member/non-member pairs ordered -> AUC 0.9375
MEMBER_SCORES, NONMEMBER_SCORES = [0.9, 0.8, 0.7, 0.6], [0.65, 0.5, 0.4, 0.3]
TOKEN = "hf_" + "loopbacktoken" * 3
# a made-up latency cost model (seconds) for latency-table tests: no test times anything real
HEAD_S, ATTENTION_S, NEURON_S, FFN_S = 0.0001, 0.0005, 0.00001, 0.0002
BASE_S, LAYER_FLOOR_S = 0.0014, 0.0003  # the floor: embeddings and head, and each layer's norms and residual adds
FLOOR_S = BASE_S + 2 * LAYER_FLOOR_S  # the tiny models' 2 layers
LFS_THRESHOLD = 10_000  # the Hub stores larger (or binary) files with LFS
# every tiny architecture and task the engine tests run: encoders classify, GPT-2 and the decoders also generate
CASES = ([(arch, "classification") for arch in TINY_ARCHS] + [("gpt2", "causal_lm")]
         + [(arch, "causal_lm") for arch in TINY_DECODERS])


def logits(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


# ------------------------------------------------------------------------------------------- tiny BERT and recipes
def tiny_bert():
    """A tiny random BERT classifier (seed 0) with MiniLM's vocabulary size."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=128, num_labels=2))


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from hfprune.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("minilm"))


def tiny_recipe(model_dir: Path, out: Path, **pruning) -> Recipe:
    return Recipe.from_dict(tiny_payload(model_dir, out, **pruning))


def tiny_payload(model_dir: Path, out: Path, **pruning) -> dict:
    return {
        "name": "tiny-sweep",
        "model": {"name": str(model_dir)},
        "data": {"dataset": "glue/sst2", "train_samples": 32, "eval_samples": 32, "max_length": 16},
        "training": {"dense_epochs": 1, "prune_epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "threads": 1},
        "pruning": {"scoring": "magnitude", **pruning},
        "audits": {"robustness": {"attacks": ["deepwordbug"], "n_examples": 5, "n_resamples": 0},
                   "privacy": {"n_nonmembers": 32, "n_resamples": 0}, "latency_rounds": 1},
        "output": {"dir": str(out)},
    }


# ------------------------------------------------------------------------------- a pruned model and its results
def tiny_pruned_model_dir(root: Path) -> Path:
    """A tiny BERT classifier with MiniLM's tokenizer, half its heads and FFN neurons pruned, saved by hfprune."""
    import hfprune

    model = tiny_bert().eval()
    config = hfprune.PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude")
    hfprune.prune(model, config)
    target = root / "pruned" / "model"
    hfprune.save_pruned(model, target, pruning_config=config, processing_class=minilm_tokenizer())
    (target / "membership_split.json").write_text("{}")  # stands for the recorded split: must never be uploaded
    return target


def constructed_audit(name: str, scale: float = 1.0):
    """A ModelAudit whose numbers are known: ASR 0.75 (deepwordbug), MIA AUC 0.9375 (loss attack)."""
    from hfprune.audit.model_audit import ModelAudit
    from hfprune.audit.privacy.report import GeneralizationGap, PrivacyEntry
    from hfprune.audit.summaries import summarize_attack_log, summarize_membership

    robustness = summarize_attack_log(OUTCOMES, np.full(5, 10.0), np.full(5, 30.0), model_name=name, sparsity=0.5,
                                      recipe="deepwordbug", query_budget=300, n_resamples=0)
    scores = np.array(MEMBER_SCORES + NONMEMBER_SCORES) * scale
    membership = summarize_membership(scores, np.array([1, 1, 1, 1, 0, 0, 0, 0], bool), model_name=name,
                                      sparsity=0.5, attack="loss", n_resamples=0)
    gap = GeneralizationGap(0.95, 0.8, 0.1, 0.5, 4, 4)
    return ModelAudit(name, 0.5, [robustness], None, PrivacyEntry(name, 0.5, gap, [membership]),
                      dataset="glue/sst2", split="validation")


def write_results(model_dir: Path) -> None:
    """hfprune_results.json as ``hfprune run`` writes it (built by the runner's own code)."""
    from hfprune.pipeline.results import StageResult
    from hfprune.pipeline.runner import RecipeRunner
    from hfprune.recipes.schema import Recipe

    recipe = Recipe.from_dict({"name": "t", "model": {"name": "minilm"}, "data": {"train_samples": 1000}})
    sparsity = json.loads((model_dir / "pruning_report.json").read_text())
    quality = {"metric": "accuracy", "value": ACCURACY, "n_examples": 872, "split": "validation",
               "higher_is_better": True, "extra": {}}
    pruned = StageResult("pruned", "pruned", None, "f", {}, "model", quality, sparsity,
                         constructed_audit("pruned").to_dict(), {"training": 1.0},
                         latency={"seq_len": 128, "batch_size": 1, "rounds": 5, "threads": 1, "dense_ms": 20.0,
                                  "pruned_ms": 10.0, "speedup": 2.0})
    dense = StageResult("dense", "dense", None, "f", {}, "model", {**quality, "value": 0.84}, sparsity,
                        constructed_audit("dense").to_dict(), {})
    payload = RecipeRunner(recipe).model_results(pruned, dense)
    (model_dir / "hfprune_results.json").write_text(json.dumps(payload))


# ----------------------------------------------------------------------------------------------- loopback Hub
class FakeHub:
    """State of the loopback Hub: repositories, committed files, uploaded LFS objects and every request seen."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
        self.commits: list[dict] = []


def make_handler(hub: FakeHub, endpoint: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, payload: dict | None = None) -> None:
            data = json.dumps(payload or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            hub.requests.append(("POST", self.path, self.headers.get("Authorization")))
            body = self._body()
            path = self.path.split("?")[0]
            if path == "/api/repos/create":
                return self._create(json.loads(body))
            if path == "/api/validate-yaml":
                return self._reply(200, {"errors": [], "warnings": []})
            if path.endswith(".git/info/lfs/objects/batch"):
                return self._lfs_batch(json.loads(body))
            parts = path.split("/")  # /api/models/<ns>/<name>/(preupload|commit)/<revision>
            if parts[:3] == ["", "api", "models"] and parts[5] == "preupload":
                return self._preupload(json.loads(body))
            if parts[:3] == ["", "api", "models"] and parts[5] == "commit":
                return self._commit(f"{parts[3]}/{parts[4]}", body)
            return self._reply(404, {"error": f"unknown endpoint {path}"})

        def do_PUT(self) -> None:  # noqa: N802
            hub.requests.append(("PUT", self.path, self.headers.get("Authorization")))
            oid = self.path.rsplit("/", 1)[-1]
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                return self._reply(400, {"error": "sha256 mismatch"})
            hub.lfs[oid] = data
            return self._reply(200)

        def _create(self, payload: dict) -> None:
            repo_id = f"{payload['organization']}/{payload['name']}"
            hub.repos[repo_id] = payload
            hub.files.setdefault(repo_id, {})
            self._reply(200, {"url": f"{endpoint[0]}/{repo_id}", "name": repo_id})

        def _preupload(self, payload: dict) -> None:
            files = [{"path": f["path"], "shouldIgnore": False, "oid": None,
                      "uploadMode": "lfs" if f["size"] > LFS_THRESHOLD or f["path"].endswith(".safetensors")
                      else "regular"} for f in payload["files"]]
            self._reply(200, {"files": files, "commitOid": "0" * 40})

        def _lfs_batch(self, payload: dict) -> None:
            objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                        "actions": {"upload": {"href": f"{endpoint[0]}/lfs-upload/{o['oid']}"}}}
                       for o in payload["objects"]]
            self._reply(200, {"transfer": "basic", "objects": objects})

        def _commit(self, repo_id: str, body: bytes) -> None:
            if repo_id not in hub.repos:
                return self._reply(404, {"error": "Repository not found"})
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            hub.commits.append(lines[0]["value"])
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    hub.files[repo_id][value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return self._reply(400, {"error": f"LFS object of {value['path']} was never uploaded"})
                    hub.files[repo_id][value["path"]] = hub.lfs[value["oid"]]
            return self._reply(200, {"commitUrl": f"{endpoint[0]}/{repo_id}/commit/{'1' * 40}",
                                     "commitOid": "1" * 40})

    return Handler


def fake_seconds(model: torch.nn.Module) -> float:
    """The made-up cost model read off the widths: a base + per layer (a layer floor, fixed attention cost if any
    head, per head; fixed FFN cost if any neuron, per neuron). A latency table measured with ``FakeTimer`` must
    recover exactly these numbers."""
    from hfprune.pruning.units import UnitKind, unit_groups

    heads = [g.num_units for g in unit_groups(model, UnitKind.HEADS)]
    neurons = [g.num_units for g in unit_groups(model, UnitKind.NEURONS)]
    return (BASE_S + LAYER_FLOOR_S * len(heads) + sum(HEAD_S * h + (ATTENTION_S if h else 0.0) for h in heads)
            + sum(NEURON_S * n + (FFN_S if n else 0.0) for n in neurons))


class FakeTimer:
    """``interleaved_timings``' signature, answering ``scale`` x ``fake_seconds`` and counting its calls."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls = 0

    def __call__(self, models, inputs, rounds):
        self.calls += 1
        return {name: [self.scale * fake_seconds(model)] * rounds for name, model in models.items()}


def load_script(path: Path) -> ModuleType:
    """A script outside the package (``scripts/``, ``benchmarks/``) imported as a module named after its file;
    registered in ``sys.modules`` because dataclasses resolve their annotations through it."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
