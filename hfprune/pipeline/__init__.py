"""The pipeline: what ``hfprune run``, ``sweep`` and ``prune`` execute, stage by stage.

- ``runner``: checks first (``preflight``), then stages with done-markers (dense, then each pruned level),
  resumable (``stage_folder``);
  ``results``: ``StageResult`` (a stage's ``stage.json``) and ``Level``;
- ``stages``: the training stages of a run (dense fine-tuning on recorded members, prune + distil, evaluate), for
  classifiers and causal LMs;
- ``prune_classifier``: ``hfprune prune``, a run with audits off: the prune and evaluate stages on a teacher
  fine-tuned by ``hfprune finetune`` (or given), written as ``dense/``, ``pruned/`` and a report;
- ``sweep``: several sparsity levels of one recipe; ``families`` and ``families_report``: pruning families
  compared at equal parameter count; ``efficiency`` and ``latency``: size on disk and interleaved CPU latency;
- ``report``: the run's markdown, JSON and PNG plots.

Recipes are parsed by :mod:`hfprune.recipes`, models audited by :mod:`hfprune.audit.model_audit`, and published by
:mod:`hfprune.hub`. Nothing is imported here, so that ``hfprune --help`` stays fast.
"""
