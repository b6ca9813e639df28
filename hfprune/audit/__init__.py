"""Security audit of a pruned model: adversarial robustness, loyalty to the dense model, and privacy leakage.

``metrics`` holds the plain numpy metric functions, ``intervals`` the confidence intervals (exact binomial, BCa
bootstrap), ``results`` the typed results that reports, plots and model cards consume, and ``compare`` the paired
dense-vs-pruned tests and their verdicts. Nothing is imported here so that ``import hfprune.audit.<submodule>``
stays light.
"""
