"""``hfprune push`` against a loopback server speaking the Hub's upload API (``HF_ENDPOINT``): create_repo, the
README metadata check, preupload, the LFS batch API with basic PUT transfers, and the NDJSON commit. No network."""

from __future__ import annotations

import argparse

import pytest
from helpers import REPO_ID, TOKEN
from huggingface_hub import ModelCard

from hfprune.cli import push as push_command
from hfprune.errors import ConfigError


def _push(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hfprune")
    push_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["push", *argv])
    return args.handler(args)


def test_push_uploads_the_model_and_its_card(hub, pruned_dir, capsys):
    assert _push(str(pruned_dir), "--repo-id", REPO_ID) == 0

    uploaded = hub.files[REPO_ID]
    local = {p.name for p in pruned_dir.iterdir() if p.is_file()}
    private = {"membership_split.json", "hfprune_results.json"}  # member flags and per-example scores stay here
    assert "hfprune_results.json" in local and set(uploaded) == (local - private) | {"README.md"}
    for name in local - private - {"README.md"}:  # the card replaces save_pruned's how-to-load README
        assert uploaded[name] == (pruned_dir / name).read_bytes(), name
    assert any(path.startswith("/lfs-upload/") for method, path, _ in hub.requests if method == "PUT")
    card = ModelCard(uploaded["README.md"].decode())
    assert card.data.library_name == "transformers" and "hfprune" in card.data.tags
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
    assert "library_name: transformers" in capsys.readouterr().out
    assert hub.requests == []


def _closed_port() -> int:
    """A local port nobody listens on: bound, then released (connections to it are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("offline", [False, True], ids=["endpoint-refuses", "HF_HUB_OFFLINE"])
def test_push_without_a_network_says_what_to_set_in_one_line(pruned_dir, monkeypatch, capsys, offline):
    """No reachable Hub: exit 2 and one line naming HF_ENDPOINT or HF_HUB_OFFLINE and --dry-run, no traceback."""
    import huggingface_hub.constants

    from hfprune.cli.main import main

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    assert main(["push", str(pruned_dir), "--repo-id", REPO_ID, "--token", TOKEN]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unexpected error" not in err
    assert err.startswith("hfprune push: error: ") and "--dry-run" in err and TOKEN not in err
    if offline:
        assert f"HF_HUB_OFFLINE is set, so the Hub at {endpoint} is not contacted" in err
    else:
        assert f"cannot reach the Hub at {endpoint} (ConnectError: " in err and "HF_ENDPOINT" in err
