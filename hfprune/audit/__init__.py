"""Security audit of a pruned model: adversarial robustness, loyalty to the dense model, and privacy leakage.

``metrics`` holds the plain numpy metric functions, ``intervals`` the confidence intervals (exact binomial, BCa and
studentized bootstrap), ``results`` the typed results that reports, plots and model cards consume (``summaries``
fills them from raw logs), ``compare`` the paired dense-vs-pruned tests and their verdicts, ``model_audit`` the
audit of one model (every stage, and ``hfprune audit`` through ``saved_model``). Nothing is imported here so that
``import hfprune.audit.<submodule>`` stays light; :func:`record_membership_split` (for a model trained with your own
Trainer) is loaded on first use.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "record_membership_split":
        from hfprune.audit.privacy.members import record_membership_split

        return record_membership_split
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
