"""Recipes: one YAML file describes a whole run — model, data, training, pruning, distillation, audits, output.

- ``schema``: the ``Recipe`` dataclass tree and ``load_recipe`` (strict: every error names the dotted key or file);
- ``runner``: checks first, then stages with done-markers (dense, then each pruned level), resumable;
- ``sweep``: several sparsity levels of one recipe and their report;
- ``audits``: robustness, loyalty and privacy audit of one model (also ``hfprune audit``);
- ``latency``: interleaved dense-vs-pruned CPU latency; ``report``: markdown, JSON and PNG plots;
- ``card`` and ``push``: the model card and the Hub upload (``hfprune push``).

Nothing is imported here, so that ``hfprune --help`` stays fast.
"""
