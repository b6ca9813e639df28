"""The pruning callback's ``pruning/*`` keys in the Trainer's logs, and its refusal of sharded (FSDP / DeepSpeed)
runs."""

from __future__ import annotations

import types

import pytest
import torch
import transformers.trainer
from conftest import tiny_model
from pruning_trainer_utils import synthetic_classification, training_args
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState

from hfprune import MovementPruningCallback, PruningConfig, add_pruning_callback
from hfprune.errors import ConfigError
from hfprune.pruning.distributed import check_unsharded, sharding_in_use
from hfprune.pruning.schedule import cubic_sparsity
from hfprune.pruning.units import UnitKind

KEYS = ("head_sparsity", "ffn_sparsity", "weight_sparsity", "flops_sparsity", "target_head_sparsity",
        "target_ffn_sparsity", "target_weight_sparsity")

CONFIG = PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, weight_sparsity=0.4, mask_update_interval=2,
                       warmup_ratio=0.2, cooldown_ratio=0.2)


class _Capture(TrainerCallback):
    """Records a copy of every log dict it is shown and, if given the pruning callback, the sparsities read off the
    pruner's masks at that moment."""

    def __init__(self, pruning: MovementPruningCallback | None = None) -> None:
        self.pruning = pruning
        self.logs: list[tuple[int, dict]] = []
        self.masks: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append((state.global_step, dict(logs)))
        if self.pruning is not None:
            pruner = self.pruning.pruner
            heads, neurons = (torch.cat(pruner.masks[kind]) for kind in (UnitKind.HEADS, UnitKind.NEURONS))
            kept, total = pruner.weights.counts()
            self.masks.append({"head": 1 - heads.mean().item(), "ffn": 1 - neurons.mean().item(),
                               "weight": 1 - kept / total, "masked_for": dict(pruner.sparsity)})


def _trainer(tmp_path, monkeypatch, config: PruningConfig, place_first: bool, report_to: tuple[str, ...] = ()):
    """A 10-step run logging every step, with a stand-in for a ``report_to`` integration placed where the Trainer
    places those (right after its flow-control callback) and a capture after the pruning callback."""
    integration = _Capture()
    monkeypatch.setattr(transformers.trainer, "get_reporting_integration_callbacks", lambda report_to: [integration])
    pruning = MovementPruningCallback(config)
    after = _Capture(pruning)
    args = training_args(tmp_path, max_steps=10, logging_strategy="steps", logging_steps=1, report_to=list(report_to))
    trainer = Trainer(model=tiny_model("bert"), args=args, train_dataset=synthetic_classification(),
                      callbacks=[] if place_first else [pruning])
    if place_first:
        add_pruning_callback(trainer, pruning)
    trainer.add_callback(after)
    return trainer, pruning, integration, after


def test_every_log_carries_the_sparsity_of_the_masks_and_the_schedules_targets(tmp_path, monkeypatch):
    trainer, pruning, integration, after = _trainer(tmp_path, monkeypatch, CONFIG, place_first=True)
    callbacks = trainer.callback_handler.callbacks
    assert callbacks.index(pruning) < callbacks.index(integration) < callbacks.index(after)
    trainer.train()
    step_logs = [(step, logs) for step, logs in after.logs if "loss" in logs]
    assert [step for step, _ in step_logs] == list(range(1, 11))
    for (step, logs), masks in zip(step_logs, after.masks, strict=False):
        for kind, final in (("head", 0.5), ("ffn", 0.5), ("weight", 0.4)):
            assert logs[f"pruning/{kind}_sparsity"] == pytest.approx(masks[kind], abs=1e-6)
            assert logs[f"pruning/target_{kind}_sparsity"] == pytest.approx(cubic_sparsity(step, 10, final, 2, 2))
        if step >= 2 and step % 2 == 0:  # an update point: the masks were chosen for the logged target
            assert masks["masked_for"][UnitKind.HEADS] == pytest.approx(logs["pruning/target_head_sparsity"])
    assert step_logs[0][1]["pruning/head_sparsity"] == 0.0  # warm-up: nothing pruned yet
    assert step_logs[-1][1]["pruning/head_sparsity"] == 0.5 and step_logs[-1][1]["pruning/ffn_sparsity"] == 0.5
    assert 0.35 <= step_logs[-1][1]["pruning/weight_sparsity"] <= 0.45
    assert 0 < step_logs[-1][1]["pruning/flops_sparsity"] < 1
    # the integration ran before the capture and saw the same values (the final summary included); so does the
    # saved log history
    def pruning_keys(logs):
        return {key: logs[f"pruning/{key}"] for key in KEYS}

    assert [pruning_keys(logs) for _, logs in integration.logs] == [pruning_keys(logs) for _, logs in after.logs]
    assert len(integration.logs) == len(after.logs) == len(trainer.state.log_history) == 11
    captured = [pruning_keys(logs) for _, logs in after.logs]
    assert [pruning_keys(entry) for entry in trainer.state.log_history] == captured
    # after training the model is compacted: an evaluation's log counts what compaction left
    trainer.evaluate(synthetic_classification(n=8))
    final = after.logs[-1][1]
    assert "eval_loss" in final and final["pruning/head_sparsity"] == final["pruning/ffn_sparsity"] == 0.5
    assert final["pruning/weight_sparsity"] == pytest.approx(step_logs[-1][1]["pruning/weight_sparsity"])


def test_appended_callback_logs_reach_the_history_but_not_earlier_integrations(tmp_path, monkeypatch, caplog):
    trainer, pruning, integration, after = _trainer(tmp_path, monkeypatch, CONFIG, place_first=False,
                                                    report_to=("tensorboard",))
    with caplog.at_level("WARNING", logger="hfprune"):
        trainer.train()
    late = [r for r in caplog.records if "add_pruning_callback" in r.getMessage()]
    assert len(late) == 1 and "['tensorboard']" in late[0].getMessage()
    assert all(not any(key.startswith("pruning/") for key in logs) for _, logs in integration.logs)
    assert all(f"pruning/{key}" in logs for _, logs in after.logs for key in KEYS)
    assert all("pruning/head_sparsity" in entry for entry in trainer.state.log_history)


def test_add_pruning_callback_moves_a_callback_already_there(tmp_path):
    pruning = MovementPruningCallback(PruningConfig(head_sparsity=0.5))
    trainer = Trainer(model=tiny_model("bert"), args=training_args(tmp_path), callbacks=[pruning])
    add_pruning_callback(trainer, pruning)
    assert trainer.callback_handler.callbacks.count(pruning) == 1
    assert trainer.callback_handler.callbacks.index(pruning) == 1  # right after DefaultFlowCallback


def _fsdp_args(tmp_path):
    return training_args(tmp_path, fsdp=True, fsdp_config={"version": 2})


def _deepspeed_args(tmp_path):
    # TrainingArguments(deepspeed=...) needs the deepspeed package, absent here: a stand-in with the same fields
    return types.SimpleNamespace(**{**vars(training_args(tmp_path)), "deepspeed": {"zero_optimization": {"stage": 3}}})


@pytest.mark.parametrize(("make_args", "named"), [(_fsdp_args, "FSDP (TrainingArguments.fsdp)"),
                                                  (_deepspeed_args, "DeepSpeed (TrainingArguments.deepspeed)")])
def test_sharded_runs_are_refused_at_train_begin_in_one_line(tmp_path, make_args, named):
    # a Trainer on one CPU process refuses FSDP itself ("only works in distributed training"), so the callback's
    # events are called directly, as the Trainer calls them
    args = make_args(tmp_path)
    callback = MovementPruningCallback(PruningConfig(head_sparsity=0.5))
    model = tiny_model("bert")
    for event in (callback.on_init_end, callback.on_train_begin):
        with pytest.raises(ConfigError) as error:
            event(args, TrainerState(), TrainerControl(), model=model)
        message = str(error.value)
        assert "\n" not in message and named in message and "DDP" in message
    assert callback.pruner is None  # refused before any pruning state or mask hook was created


def test_sharding_is_read_from_accelerate_launch_and_from_the_model(tmp_path, monkeypatch):
    args = training_args(tmp_path)
    model = tiny_model("bert")
    assert sharding_in_use(args, model) is None
    check_unsharded(args, model)  # a single process passes
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert sharding_in_use(args, model) == "FSDP (ACCELERATE_USE_FSDP from accelerate launch)"
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    model.bert.encoder.layer[0].attention.self.query.weight.ds_id = 0  # how ZeRO-3 marks a partitioned parameter
    assert sharding_in_use(args, model) == "sharded parameters (DTensor or DeepSpeed ZeRO-3)"
