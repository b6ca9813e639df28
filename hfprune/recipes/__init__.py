"""Recipes: one YAML file describes a whole run — model, data, training, pruning, distillation, audits, output.

This package only parses and validates them: ``schema`` (the ``Recipe`` dataclass tree and ``load_recipe``; strict:
every error names the dotted key or file) and ``families_spec`` (the pruning families a recipe may name). Running a
recipe is :mod:`hfprune.pipeline`.

Nothing is imported here, so that ``hfprune --help`` stays fast.
"""
