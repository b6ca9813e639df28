"""Security audit of a pruned model: adversarial robustness, loyalty to the dense model, and privacy leakage.

``metrics`` holds the plain numpy metric functions, ``results`` the typed results that reports, plots and model
cards consume. Nothing is imported here so that ``import hfprune.audit.<submodule>`` stays light.
"""
