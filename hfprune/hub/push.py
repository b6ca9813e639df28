"""Uploading a pruned model to the Hub with its model card (``hfprune push``).

The upload is ``HfApi.create_repo`` + ``HfApi.upload_folder`` against ``HF_ENDPOINT`` (read when pushing, so a
mirror or a local test server set after import is honoured). What goes up is assembled in a temporary folder: the
model files, ``README.md`` (the card) and, on request, a zero-padded dense export that plain ``transformers``
loads. The recorded membership split and canaries stay local: they name the training members and planted secrets.
The token comes from the caller or the environment, is handed only to ``HfApi`` and is never logged or written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hfprune.errors import ConfigError, HubUnreachableError
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

# files of a run's model folder that never leave the machine; hfprune_results.json holds the per-example records the
# paired tests need (membership-inference scores with member flags, canary exposures): the card built from it
# carries the aggregates and the verdicts
PRIVATE_FILES = frozenset({"membership_split.json", "canaries.json", "training_args.bin", "hfprune_results.json"})
# what may go up besides the card: configs, weights and tokenizers (JSON, safetensors, vocabularies); anything else in
# the folder (notes, pickles, code, keys) stays local
UPLOAD_SUFFIXES = (".json", ".safetensors")
UPLOAD_NAMES = frozenset({"vocab.txt", "merges.txt", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model"})
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class PushResult:
    """Where the model went and what was uploaded."""

    repo_url: str
    commit_url: str
    files: list[str]


def check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not REPO_ID.match(repo_id) or len(repo_id) > 96:
        raise ConfigError(f"--repo-id: expected USER/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")


def hub_endpoint(endpoint: str | None = None) -> str | None:
    """``endpoint``, else ``$HF_ENDPOINT``, else None (huggingface_hub's default, https://huggingface.co)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def upload_files(model_dir: Path) -> list[Path]:
    """The files of ``model_dir`` that are uploaded: regular files on the allow-list (``UPLOAD_SUFFIXES``,
    ``UPLOAD_NAMES``), not private, not hidden (a run's .hfprune.lock). A symbolic link in the folder is an error
    naming it (``ln -s ~/.cache/huggingface/token notes.txt`` must not upload the token); other files are left out
    with a log line. The folder itself is the one the user named, link or not."""
    from hfprune.utils.io import refuse_symlink

    if not model_dir.is_dir():
        raise ConfigError(f"MODEL_DIR: {model_dir} is not a folder; expected a model folder written by hfprune")
    chosen, skipped = [], []
    for entry in sorted(model_dir.iterdir()):
        refuse_symlink(entry, "MODEL_DIR", "regular files only: push never uploads through a link")
        if entry.name.startswith(".") or entry.name in PRIVATE_FILES or entry.name == "README.md":
            continue
        if entry.is_file() and (entry.suffix in UPLOAD_SUFFIXES or entry.name in UPLOAD_NAMES):
            chosen.append(entry)
        else:
            skipped.append(entry.name)
    if skipped:
        logger.warning("not uploading %s (not a config, weights or tokenizer file)", ", ".join(skipped))
    return chosen


def stage_upload(model_dir: Path, files: list[Path], card_text: str, staging: Path, dense_export: bool) -> list[str]:
    """Fill ``staging`` with what is uploaded (``files`` of ``upload_files`` and the card); returns the repo paths,
    sorted."""
    from hfprune.hub.card import DENSE_EXPORT_DIR

    for entry in files:
        _link_or_copy(entry, staging / entry.name)
    (staging / "README.md").write_text(card_text, encoding="utf-8")
    if dense_export:
        from hfprune.models import load_tokenizer
        from hfprune.pruning.serialization import export_dense, load_pruned

        logger.info("exporting a zero-padded dense copy for loading without hfprune")
        export_dense(load_pruned(model_dir), staging / DENSE_EXPORT_DIR)
        load_tokenizer(model_dir).save_pretrained(staging / DENSE_EXPORT_DIR)
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)  # same file system: no copy of the weights
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    audit_dir: str | os.PathLike | None = None,
    dense_export: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Create ``repo_id`` (if needed) and upload the pruned model in ``model_dir`` with its card."""
    from huggingface_hub import HfApi

    from hfprune.hub.card import build_model_card

    check_repo_id(repo_id)
    model_dir = Path(model_dir)
    if not (model_dir / "model.safetensors").is_file() and not (model_dir / "model.safetensors.index.json").is_file():
        raise ConfigError(f"MODEL_DIR: {model_dir} has no safetensors weights (model.safetensors)")
    chosen = upload_files(model_dir)  # a link in the folder is refused before the card reads it or the Hub is called
    card = build_model_card(model_dir, repo_id, audit_dir=audit_dir, dense_export=dense_export)
    api = HfApi(endpoint=hub_endpoint(endpoint), token=token)
    with tempfile.TemporaryDirectory(prefix="hfprune-push-") as scratch:
        files = stage_upload(model_dir, chosen, str(card), Path(scratch), dense_export)
        logger.info("creating %s on %s", repo_id, api.endpoint)
        with hub_reachable(api.endpoint):
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            logger.info("uploading %d files to %s", len(files), repo_id)
            commit = api.upload_folder(repo_id=repo_id, folder_path=scratch, repo_type="model",
                                       commit_message=commit_message or "Upload pruned model with hfprune")
    return PushResult(str(repo_url), str(getattr(commit, "commit_url", commit)), files)


@contextmanager
def hub_reachable(endpoint: str) -> Iterator[None]:
    """Turn "no network" (a refused or timed-out connection, ``HF_HUB_OFFLINE``) into one line that says what to
    set: huggingface_hub raises its HTTP client's transport errors and ``OfflineModeIsEnabled`` as they are."""
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise HubUnreachableError(f"HF_HUB_OFFLINE is set, so the Hub at {endpoint} is not contacted; unset it to "
                                  "upload, or pass --dry-run to print the card without uploading") from None
    except httpx2.TransportError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise HubUnreachableError(f"cannot reach the Hub at {endpoint} ({type(exc).__name__}: {reason}); check the "
                                  "network or set HF_ENDPOINT to a reachable Hub or mirror, or pass --dry-run to "
                                  "print the card without uploading") from None
