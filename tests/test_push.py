"""``hfprune push`` against a loopback server speaking the Hub's upload API (``HF_ENDPOINT``): create_repo, the
README metadata check, preupload, the LFS batch API with basic PUT transfers, and the NDJSON commit. No network."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from test_card import tiny_pruned_model_dir, write_results

from hfprune.cli import push as push_command
from hfprune.errors import ConfigError

TOKEN = "hf_" + "loopbacktoken" * 3
REPO_ID = "alice/minilm-sst2-pruned"
LFS_THRESHOLD = 10_000  # the Hub stores larger (or binary) files with LFS


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


@pytest.fixture
def hub(monkeypatch):
    """A loopback Hub on 127.0.0.1 with HF_ENDPOINT pointing at it (xet storage off: it has no CAS server)."""
    import huggingface_hub.constants

    state, endpoint = FakeHub(), [""]
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, endpoint))
    endpoint[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", endpoint[0])
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory) -> Path:
    model_dir = tiny_pruned_model_dir(tmp_path_factory.mktemp("push"))
    write_results(model_dir)
    return model_dir


def _push(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hfprune")
    push_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["push", *argv])
    return args.handler(args)


def test_push_uploads_the_model_and_its_card(hub, pruned_dir, capsys):
    assert _push(str(pruned_dir), "--repo-id", REPO_ID) == 0

    uploaded = hub.files[REPO_ID]
    local = {p.name for p in pruned_dir.iterdir() if p.is_file()}
    assert set(uploaded) == (local - {"membership_split.json"}) | {"README.md"}
    for name in local - {"membership_split.json", "README.md"}:  # the card replaces save_pruned's how-to-load README
        assert uploaded[name] == (pruned_dir / name).read_bytes(), name
    assert any(path.startswith("/lfs-upload/") for method, path, _ in hub.requests if method == "PUT")
    card = ModelCard(uploaded["README.md"].decode())
    assert card.data.library_name == "hfprune"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {
        "accuracy": 0.8125, "attack_success_rate": 0.75, "roc_auc": 0.9375}
    assert TOKEN not in uploaded["README.md"].decode()
    assert TOKEN not in capsys.readouterr().out
    assert all(auth == f"Bearer {TOKEN}" for method, _, auth in hub.requests if method != "PUT")  # sent, not shown
    assert hub.repos[REPO_ID]["name"] == "minilm-sst2-pruned" and hub.commits[0]["summary"].startswith("Upload")


def test_push_with_dense_export_uploads_a_plain_transformers_copy(hub, pruned_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    import hfprune

    assert _push(str(pruned_dir), "--repo-id", REPO_ID, "--dense-export", "--token", TOKEN) == 0
    uploaded = hub.files[REPO_ID]
    export = tmp_path / "dense-export"
    export.mkdir()
    for path, data in uploaded.items():
        if path.startswith("dense-export/"):
            (export / path.split("/", 1)[1]).write_bytes(data)
    dense = AutoModelForSequenceClassification.from_pretrained(export).eval()
    pruned = hfprune.load_pruned(pruned_dir)
    ids = {"input_ids": __import__("torch").tensor([[101, 2023, 2003, 1037, 3231, 102]])}
    assert dense.config.num_attention_heads == 4
    assert (dense(**ids).logits - pruned(**ids).logits).abs().max() < 1e-5


def test_bad_repo_id_is_refused_before_any_request(hub, pruned_dir):
    with pytest.raises(ConfigError, match=r"^--repo-id: expected USER/NAME"):
        _push(str(pruned_dir), "--repo-id", "no-namespace")
    assert hub.requests == []


def test_dry_run_prints_the_card_and_uploads_nothing(hub, pruned_dir, capsys):
    assert _push(str(pruned_dir), "--repo-id", REPO_ID, "--dry-run") == 0
    assert "library_name: hfprune" in capsys.readouterr().out
    assert hub.requests == []
