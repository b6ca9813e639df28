"""Recipes: one YAML file describes a whole run — model, data, training, pruning, distillation, audits, output.

This package only parses and validates them: ``schema`` (the ``Recipe`` dataclass tree; strict: every error names
the dotted key), ``section`` (the sections' base), ``audit_sections`` (the ``audits`` section), ``loading``
(``load_recipe``: the YAML file, every error naming it) and ``families_spec`` (the pruning families a recipe may
name). Running a
recipe is :mod:`hfprune.pipeline`.

Nothing is imported here, so that ``hfprune --help`` stays fast.
"""
