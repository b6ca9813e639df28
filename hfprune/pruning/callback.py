"""``MovementPruningCallback``: drops structured (and weight-level) pruning into an ordinary ``Trainer`` run.

Thin by design: it owns no math and no loss. It builds a ``StructuredPruner`` when training begins, feeds it the
gradients before each optimizer step, lets it update masks after each step, and compacts at the end (zeroing pruned
weights too). A ``NonFiniteGuard`` checks input weights, gradients and weights on the way (``on_nonfinite``).
Its state (scores, masks) is saved in every Trainer checkpoint through ``ExportableState`` and restored on resume
from any checkpoint; with ``load_best_model_at_end`` the best checkpoint's masks are restored with its weights
before compaction (``hfprune.pruning.checkpoints``).

At every Trainer log it adds ``pruning/*`` keys (sparsity kept and the schedule's targets) to the log dict. The
Trainer calls ``on_log`` on its callbacks in order, reporting integrations (``report_to``) before the callbacks passed
to it, so add the callback with ``add_pruning_callback`` to place it before them; otherwise the keys reach
``trainer.state.log_history`` and later callbacks only. Sharded runs (FSDP, DeepSpeed) are refused at start.
"""

from __future__ import annotations

from typing import Any

from transformers import DefaultFlowCallback, Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from hfprune.pruning.checkpoints import callback_state, checkpoint_callback_state
from hfprune.pruning.config import PruningConfig
from hfprune.pruning.distributed import check_unsharded
from hfprune.pruning.nonfinite import NonFiniteGuard, check_finite_weights, fp16_scaled, learning_rate, model_name
from hfprune.pruning.pruner import StructuredPruner
from hfprune.pruning.stats import SparsityReport, sparsity_report, training_log
from hfprune.pruning.structure import PrunedStructure
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)


class MovementPruningCallback(TrainerCallback, ExportableState):
    """Prune heads and FFN neurons during fine-tuning, following ``config``'s scores and schedule.

    On resume, the Trainer replaces this object by a new one rebuilt from the checkpoint; find it again with
    ``trainer.callback_handler.callbacks`` if you need its ``report`` afterwards.
    """

    def __init__(self, config: PruningConfig | dict[str, Any] | None = None,
                 pruner_state: dict[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, PruningConfig) else PruningConfig.from_dict(config or {})
        self.pruner_state = pruner_state
        self.pruner: StructuredPruner | None = None
        self.structure: PrunedStructure | None = None
        self.report: SparsityReport | None = None
        self.guard = NonFiniteGuard(self.config.on_nonfinite)
        self._step_ok = True
        self.before_integrations = False
        """Set by ``add_pruning_callback``: the callback runs before the reporting integrations."""
        self._warned_late = False

    def state(self) -> dict[str, Any]:
        pruner_state = self.pruner.state_dict() if self.pruner is not None else self.pruner_state
        return {"args": {"config": self.config.to_dict()}, "attributes": {"pruner_state": pruner_state}}

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None,
                    **kwargs) -> None:
        check_unsharded(args, model)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None,
                       **kwargs) -> None:
        check_unsharded(args, model)
        check_finite_weights(model.named_parameters(), f"model {model_name(model)}")
        if self.pruner_state is None:
            self.pruner_state = self._state_from_checkpoint(state)
        self.pruner = StructuredPruner.from_state(model, self.config, self.pruner_state)
        if self.pruner_state is not None:
            logger.info("pruning state restored from checkpoint (%d scored steps)", self.pruner.scored_steps)

    def _state_from_checkpoint(self, state: TrainerState) -> dict[str, Any] | None:
        """On resume the Trainer has loaded the checkpoint's TrainerState, which carries this callback's saved
        state; read it here so resuming works without ``restore_callback_states_from_checkpoint=True``."""
        return ((callback_state(state.stateful_callbacks, type(self).__name__) or {}).get("attributes")
                or {}).get("pruner_state")

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                              model=None, optimizer=None, **kwargs) -> None:
        self._step_ok = self.guard.check_gradients(model, state.global_step + 1, learning_rate(optimizer),
                                                   fp16_scaled(args))
        if self._step_ok or fp16_scaled(args):  # an fp16 overflow step: the pruner skips its scores itself
            self.pruner.accumulate_scores(state.global_step, state.max_steps)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if not self._step_ok and self.guard.policy == "skip":
            return
        if self.pruner.maybe_update_masks(state.global_step, state.max_steps):
            report = sparsity_report(self.pruner.model, self.config.flops_seq_len)
            logger.info("step %d: heads %d/%d, FFN neurons %d/%d, weights %d/%d kept", state.global_step,
                        report.heads_kept, report.heads_total, report.neurons_kept, report.neurons_total,
                        report.weights_kept, report.weights_total)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs) -> None:
        if self.pruner is None or logs is None:
            return
        values = training_log(self.pruner.model, self.pruner.scheduled_sparsities(state.global_step, state.max_steps),
                              self.config.flops_seq_len)
        logs.update(values)
        # ``Trainer.log`` appended a copy of ``logs`` to the history just before this event
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)
        if args.report_to and not self.before_integrations and not self._warned_late:
            self._warned_late = True
            logger.warning("pruning/* log keys reach trainer.state.log_history but not report_to %s: this callback "
                           "runs after them; add it with hfprune.pruning.add_pruning_callback(trainer, callback)",
                           args.report_to)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None,
                     train_dataloader=None, **kwargs) -> None:
        self.guard.check_end(model, state.global_step, train_dataloader)
        if args.load_best_model_at_end and state.best_model_checkpoint is not None:
            # the Trainer has just loaded the best checkpoint's weights (``_load_best_model`` runs before this
            # event): give them the masks of their own step, not the last step's
            saved = checkpoint_callback_state(state.best_model_checkpoint, type(self).__name__)
            self.pruner.restore_best(saved["attributes"]["pruner_state"], state.best_model_checkpoint)
        else:
            self.pruner.finalize(state.max_steps)
        if self.config.compact_on_train_end:
            self.structure = self.pruner.compact()
        self.report = sparsity_report(model, self.config.flops_seq_len)
        logger.info("pruning done: %.1f%% of parameters (%.1f%% counting zeroed weights) and %.1f%% of layer FLOPs "
                    "removed", 100 * self.report.param_sparsity, 100 * self.report.nonzero_param_sparsity,
                    100 * self.report.flops_sparsity)


def add_pruning_callback(trainer: Trainer, callback: MovementPruningCallback) -> MovementPruningCallback:
    """Put ``callback`` in ``trainer`` right after its flow-control callback, before the reporting integrations
    (TensorBoard, W&B, ...) and the progress printer, so the ``pruning/*`` keys it adds in ``on_log`` reach them all.
    ``Trainer(callbacks=[...])`` and ``trainer.add_callback`` append after them instead. Moves it if already there."""
    callbacks = trainer.callback_handler.callbacks
    if callback in callbacks:
        callbacks.remove(callback)
    index = next((i + 1 for i, existing in enumerate(callbacks) if isinstance(existing, DefaultFlowCallback)), 0)
    callbacks.insert(index, callback)
    callback.before_integrations = True
    return callback
