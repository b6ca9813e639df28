"""Privacy audit: does pruning make a model leak more about its training data?

- membership inference on the split a training run recorded (:class:`MembershipSplit`): loss, confidence, entropy,
  reference-calibrated and offline LiRA attacks (:mod:`.probes`), one base :class:`PrivacyProbe`, a registry;
- canary exposure for causal LMs (Carlini et al. 2019, :mod:`.canaries`), exact or by a skew-normal fit;
- the extraction signal: perplexity and perplexity/zlib rankings of members vs non-members (:mod:`.extraction`);
- runs that record their split: :func:`finetune_on_members` (classifiers), :func:`train_canary_lm` (an offline
  GPT-2 trained here with canaries); :func:`audit_model` and :class:`PrivacyReport` (JSON, markdown, plots).

Names are imported lazily so that ``import hfprune.audit.privacy`` does not pull in torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MembershipSplit": "split",
    "MembersSpec": "members",
    "record_membership_split": "members",
    "ExampleStats": "scores",
    "classifier_stats": "scores",
    "causal_lm_stats": "scores",
    "zlib_entropy": "scores",
    "PrivacyProbe": "probes",
    "MembershipAttack": "probes",
    "MembershipInputs": "probes",
    "LossThresholdAttack": "probes",
    "ConfidenceAttack": "probes",
    "EntropyAttack": "probes",
    "ReferenceCalibratedAttack": "probes",
    "LiRAAttack": "probes",
    "PROBES": "probes",
    "register_probe": "probes",
    "get_probe": "probes",
    "PerplexityRanking": "extraction",
    "ZlibRatioRanking": "extraction",
    "extraction_signal": "extraction",
    "Canary": "canaries",
    "CanarySet": "canaries",
    "CanaryInputs": "canaries",
    "CanaryExposureProbe": "canaries",
    "make_canaries": "canaries",
    "insert_canaries": "canaries",
    "CanaryLMConfig": "lm",
    "CanaryLMRun": "lm",
    "train_canary_lm": "lm",
    "train_tokenizer": "lm",
    "MemberFinetuneConfig": "classifier",
    "MemberFinetuneRun": "classifier",
    "finetune_on_members": "classifier",
    "AuditedRun": "runs",
    "load_run": "runs",
    "train_disjoint_models": "runs",
    "train_shadows": "runs",
    "ShadowModels": "audit",
    "SHADOW_MODES": "report",
    "ShadowsUsed": "report",
    "PrivacyAuditConfig": "audit",
    "audit_model": "audit",
    "model_stats": "audit",
    "reference_stats": "audit",
    "pretrained_reference_stats": "audit",
    "generalization_gap": "audit",
    "GeneralizationGap": "report",
    "PrivacyEntry": "report",
    "PrivacyReport": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        if _EXPORTS[name] == "probes":  # probes register themselves on import: complete the registry first
            importlib.import_module(f"{__name__}.probes").load_builtin_probes()
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
