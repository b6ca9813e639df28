"""Distillation: the loss against hand-computed numbers, padding and gradient-accumulation invariance, and the trainer
(frozen teacher, moving student, logged parts, teacher-logit cache, pruning callbacks, clear mismatch errors)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model
from transformers import TrainerCallback
from transformers.pytorch_utils import prune_linear_layer

from hfprune.distill import DistillationArguments, DistillationTrainer, distillation_loss, hidden_state_loss
from hfprune.distill.loss import loss_item_mask, uniform_layer_map
from hfprune.errors import ConfigError

# ---- helpers ----


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on 2 shared, busy cores, OpenMP threads waiting on each other made a tiny GPT-2 step ~100x
    slower (0.8 s instead of 10 ms)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _args(tmp_path, **overrides) -> DistillationArguments:
    settings = dict(output_dir=str(tmp_path), use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                    disable_tqdm=True, per_device_train_batch_size=2, learning_rate=1e-2, max_steps=2, seed=0)
    settings.update(overrides)
    return DistillationArguments(**settings)


def _pad_collate(features: list[dict]) -> dict[str, torch.Tensor]:
    """Right-pad token lists: pad id 0, attention 0, label -100; other columns become tensors as they are."""
    length = max(len(f["input_ids"]) for f in features)
    batch = {
        "input_ids": torch.tensor([f["input_ids"] + [0] * (length - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (length - len(f["input_ids"]))
                                        for f in features]),
    }
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        batch["labels"] = (torch.tensor([lab + [-100] * (length - len(lab)) for lab in labels])
                           if isinstance(labels[0], list) else torch.tensor(labels))
    for key in features[0].keys() - {"input_ids", "attention_mask", "labels"}:
        batch[key] = torch.tensor([f[key] for f in features])
    return batch


def _lm_dataset(lengths: list[int], seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths:
        ids = torch.randint(3, 99, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": list(ids)})
    return rows


def _cls_dataset(n: int, length: int = 6, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(3, 99, (length,), generator=generator).tolist(), "labels": i % 2}
            for i in range(n)]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _log_entries(trainer: DistillationTrainer) -> list[dict]:
    return [entry for entry in trainer.state.log_history if "loss" in entry]


# ---- the loss on hand-made logits ----


def _softmax(row: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(x / temperature) for x in row]
    return [e / sum(exps) for e in exps]


STUDENT = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
TEACHER = [[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
LABELS = [2, 0]


def test_loss_equals_hand_computed_value():
    temperature, alpha = 2.0, 0.3
    ce = [-math.log(_softmax(s)[y]) for s, y in zip(STUDENT, LABELS, strict=True)]
    kl = []
    for s, t in zip(STUDENT, TEACHER, strict=True):
        p_s, p_t = _softmax(s, temperature), _softmax(t, temperature)
        kl.append(sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True)))
    expected_ce, expected_kd = sum(ce) / 2, temperature**2 * sum(kl) / 2
    out = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), temperature, alpha)
    assert out.ce.item() == pytest.approx(expected_ce, rel=1e-6)
    assert out.kd.item() == pytest.approx(expected_kd, rel=1e-6)
    assert out.loss.item() == pytest.approx(alpha * expected_ce + (1 - alpha) * expected_kd, rel=1e-6)
    assert out.num_items == 2


def test_alpha_one_is_plain_cross_entropy():
    student, labels = torch.tensor(STUDENT), torch.tensor(LABELS)
    out = distillation_loss(student, torch.tensor(TEACHER), labels, temperature=3.0, alpha=1.0)
    assert out.loss.item() == pytest.approx(F.cross_entropy(student, labels).item(), rel=1e-6)


def test_alpha_one_matches_the_causal_lm_loss_of_transformers(tiny_inputs):
    model = tiny_model("gpt2", task="causal_lm")
    labels = tiny_inputs["input_ids"].masked_fill(tiny_inputs["attention_mask"] == 0, -100)
    with torch.no_grad():
        outputs = model(**tiny_inputs, labels=labels)
    out = distillation_loss(outputs.logits, torch.zeros_like(outputs.logits), labels, 2.0, 1.0,
                            attention_mask=tiny_inputs["attention_mask"])
    assert out.loss.item() == pytest.approx(outputs.loss.item(), rel=1e-6)
    assert out.num_items == 3 * 9 - 3  # 9 shifted positions per row, the last row's 3 padded targets excluded


def test_identical_logits_give_zero_kd():
    logits = torch.tensor(STUDENT)
    out = distillation_loss(logits, logits.clone(), torch.tensor(LABELS), temperature=2.0, alpha=0.0)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-7)
    unlabelled = distillation_loss(logits, logits.clone(), None, temperature=2.0, alpha=0.0)
    assert unlabelled.loss.item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_is_scaled_by_temperature_squared(temperature):
    student, teacher = [0.2, -0.4, 1.1], [1.0, 0.0, -1.0]
    p_s, p_t = _softmax(student, temperature), _softmax(teacher, temperature)
    kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True))
    out = distillation_loss(torch.tensor([student]), torch.tensor([teacher]), None, temperature, alpha=0.0)
    assert out.kd.item() == pytest.approx(temperature**2 * kl, rel=1e-6)


def test_padding_positions_do_not_change_the_causal_lm_loss():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 6, 11, generator=generator), torch.randn(2, 6, 11, generator=generator)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    labels = torch.randint(0, 11, (2, 6), generator=generator).masked_fill(attention_mask == 0, -100)
    base = distillation_loss(student, teacher, labels, 2.0, 0.5, attention_mask=attention_mask)
    # row 1: positions 2.. predict padding, and the last position of every row predicts nothing
    noisy_student, noisy_teacher = student.clone(), teacher.clone()
    noisy_student[1, 2:] += 50 * torch.randn(4, 11, generator=generator)
    noisy_teacher[1, 2:] -= 50 * torch.randn(4, 11, generator=generator)
    noisy_student[0, 5] += 50 * torch.randn(11, generator=generator)
    noisy = distillation_loss(noisy_student, noisy_teacher, labels, 2.0, 0.5, attention_mask=attention_mask)
    assert noisy.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    assert base.num_items == 5 + 2
    # the attention mask alone (no labels) selects the same positions
    kd_only = distillation_loss(noisy_student, noisy_teacher, None, 2.0, 0.0, attention_mask=attention_mask)
    assert kd_only.kd.item() == pytest.approx(base.kd.item(), rel=1e-6)


def test_num_items_in_batch_splits_a_batch_exactly():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(4, 7, 13, generator=generator), torch.randn(4, 7, 13, generator=generator)
    attention_mask = torch.tensor([[1] * n + [0] * (7 - n) for n in (2, 7, 3, 4)])
    labels = torch.randint(0, 13, (4, 7), generator=generator).masked_fill(attention_mask == 0, -100)
    full = distillation_loss(student, teacher, labels, 2.0, 0.4, attention_mask=attention_mask)
    total = full.num_items
    halves = [distillation_loss(student[i:i + 2], teacher[i:i + 2], labels[i:i + 2], 2.0, 0.4,
                                attention_mask=attention_mask[i:i + 2], num_items_in_batch=total) for i in (0, 2)]
    assert sum(h.loss.item() for h in halves) == pytest.approx(full.loss.item(), rel=1e-6)
    # per-half means would weight the 7 items of the first half like the 5 of the second
    assert halves[0].num_items != halves[1].num_items


def test_hidden_state_loss_by_hand():
    student = [torch.zeros(1, 3, 2), torch.tensor([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]]])]
    teacher = [torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.tensor([[[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])]
    attention_mask = torch.tensor([[1, 1, 0]])
    # per-example item: token errors (1^2 + 0^2) / 2 = 0.5 and (2^2 + 0) / 2 = 2, the padded token is ignored
    loss = hidden_state_loss(student, teacher, [[1, 2]], torch.tensor([True]), attention_mask)
    assert loss.item() == pytest.approx((0.5 + 2.0) / 2)
    # token-level causal items: position 0 only (position 1 predicts a padded token)
    mask = loss_item_mask((1, 3), None, attention_mask, token_level=True, causal_lm=True)
    assert mask.tolist() == [[True, False]]
    assert hidden_state_loss(student, teacher, [[1, 2]], mask).item() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="student layer 1 has 2, teacher layer 1 has 4"):
        hidden_state_loss(student, [torch.zeros(1, 3, 4)] * 2, [[1, 1]], torch.tensor([True]))


def test_uniform_layer_map():
    assert uniform_layer_map(2, 2) == [[1, 1], [2, 2]]
    assert uniform_layer_map(2, 4) == [[1, 2], [2, 4]]
    assert uniform_layer_map(3, 4) == [[1, 1], [2, 3], [3, 4]]


def test_logit_mismatch_names_both_sizes():
    with pytest.raises(ConfigError, match="vocabulary size.*student has 11, teacher has 12"):
        distillation_loss(torch.zeros(1, 3, 11), torch.zeros(1, 3, 12), None, 1.0, 0.0)
    with pytest.raises(ConfigError, match="label count.*student has 2, teacher has 3"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 3), torch.tensor([0]), 1.0, 0.5)


# ---- arguments ----


@pytest.mark.parametrize(("field", "value", "message"), [
    ("distill_alpha", 1.5, "distill_alpha"),
    ("distill_temperature", 0.0, "distill_temperature"),
    ("hidden_distill_weight", -1.0, "hidden_distill_weight"),
    ("hidden_layer_map", [[1, 2, 3]], "hidden_layer_map"),
    ("hidden_layer_map", "1:x", "hidden_layer_map"),
])
def test_arguments_are_validated(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        _args(tmp_path, **{field: value})


def test_arguments_parse_layer_maps_and_reject_cached_hidden(tmp_path):
    assert _args(tmp_path, hidden_layer_map="1:2, 2:4").hidden_layer_map == [[1, 2], [2, 4]]
    assert _args(tmp_path, hidden_layer_map=[(0, 0), [2, 1]]).hidden_layer_map == [[0, 0], [2, 1]]
    with pytest.raises(ConfigError, match="cache_teacher_logits"):
        _args(tmp_path, cache_teacher_logits=True, hidden_distill_weight=1.0)


# ---- the trainer ----


def test_trainer_freezes_teacher_and_trains_student(tmp_path):
    student, teacher = tiny_model("bert", seed=0), tiny_model("bert", seed=1)
    student.train()
    teacher.train()  # the trainer must put it in eval mode
    teacher_before, student_before = _state(teacher), _state(student)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path, distill_alpha=0.4),
                                  train_dataset=_cls_dataset(4))
    trainer.train()

    assert not teacher.training
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    entries = _log_entries(trainer)
    assert len(entries) == 2
    for entry in entries:
        assert entry["ce_loss"] > 0 and entry["kd_loss"] > 0 and entry["hidden_loss"] == 0
        assert entry["loss"] == pytest.approx(0.4 * entry["ce_loss"] + 0.6 * entry["kd_loss"], rel=1e-4)


def test_hidden_state_term_is_used(tmp_path):
    student, teacher = tiny_model("bert", seed=0), tiny_model("bert", seed=1)
    batch = _pad_collate(_cls_dataset(2))
    losses = {}
    for weight in (0.0, 2.0):
        trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                      args=_args(tmp_path, hidden_distill_weight=weight))
        with torch.no_grad():
            losses[weight] = trainer.compute_loss(student.eval(), dict(batch)).item()
    assert trainer.layer_map == [[1, 1], [2, 2]]
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True).hidden_states
        t = teacher(**batch, output_hidden_states=True).hidden_states
    expected_mse = sum(((s[i] - t[i]) ** 2).mean().item() for i in (1, 2)) / 2  # no padding: a plain mean
    assert losses[2.0] - losses[0.0] == pytest.approx(2.0 * expected_mse, rel=1e-4)

    trainer = DistillationTrainer(model=student, teacher_model=teacher, train_dataset=_cls_dataset(4),
                                  args=_args(tmp_path, hidden_distill_weight=1.0, max_steps=1))
    trainer.train()
    (entry,) = _log_entries(trainer)
    assert entry["hidden_loss"] > 0
    assert entry["loss"] == pytest.approx(0.5 * entry["ce_loss"] + 0.5 * entry["kd_loss"] + entry["hidden_loss"],
                                          rel=1e-4)


def test_evaluate_reports_loss_parts(tmp_path):
    student, teacher = tiny_model("gpt2", task="causal_lm", seed=0), tiny_model("gpt2", task="causal_lm", seed=1)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path, distill_alpha=0.25,
                                  per_device_eval_batch_size=3), eval_dataset=_lm_dataset([4, 7, 5]),
                                  data_collator=_pad_collate)
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(0.25 * metrics["eval_ce_loss"] + 0.75 * metrics["eval_kd_loss"],
                                                 rel=1e-5)
    assert metrics["eval_hidden_loss"] == 0


def test_mismatched_vocabulary_size_names_both(tmp_path):
    student = tiny_model("gpt2", task="causal_lm")
    teacher = tiny_model("gpt2", task="causal_lm", vocab_size=120)
    with pytest.raises(ConfigError, match="vocabulary size: student has 99, teacher has 120"):
        DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path))


def test_mismatched_label_count_names_both(tmp_path):
    student, teacher = tiny_model("bert"), tiny_model("bert", num_labels=3)
    with pytest.raises(ConfigError, match=r"label count \(config.num_labels\): student has 2, teacher has 3"):
        DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path))


def test_mismatched_hidden_size_is_an_error_only_with_hidden_matching(tmp_path):
    student = tiny_model("bert")
    teacher = tiny_model("bert", hidden_size=64, intermediate_size=96)
    DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path))
    with pytest.raises(ConfigError, match="student has 32, teacher has 64"):
        DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path, hidden_distill_weight=1.0))


def test_teacher_must_be_a_separate_model(tmp_path):
    student = tiny_model("bert")
    with pytest.raises(ConfigError, match="shares parameters"):
        DistillationTrainer(model=student, teacher_model=student, args=_args(tmp_path))


class _GradientCapture(TrainerCallback):
    """Copies the student's gradients right before the optimizer step (after accumulation)."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    # uneven lengths: however the sampler splits them into two micro-batches, their token counts differ
    dataset = _lm_dataset([2, 3, 5, 11])
    grads, logged = [], []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        capture = _GradientCapture()
        trainer = DistillationTrainer(
            model=tiny_model("gpt2", task="causal_lm", seed=0), teacher_model=tiny_model("gpt2", task="causal_lm",
                                                                                         seed=1),
            args=_args(tmp_path, per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                       max_steps=1, max_grad_norm=0.0, hidden_distill_weight=0.5, distill_alpha=0.3),
            train_dataset=dataset, data_collator=_pad_collate, callbacks=[capture])
        trainer.train()
        grads.append(capture.grads)
        (entry,) = _log_entries(trainer)
        logged.append(entry)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for entry in logged:  # the parts of the accumulated step add up to its loss, and both runs log the same
        assert entry["loss"] == pytest.approx(0.3 * entry["ce_loss"] + 0.7 * entry["kd_loss"]
                                              + 0.5 * entry["hidden_loss"], rel=1e-4)
        assert entry["loss"] == pytest.approx(logged[0]["loss"], rel=1e-4)
        assert entry["ce_loss"] == pytest.approx(logged[0]["ce_loss"], rel=1e-4)
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_teacher_logit_cache_runs_the_teacher_once_per_example(tmp_path):
    dataset = _lm_dataset([3, 6, 4, 8, 5, 2])  # shuffled with dynamic padding: lengths differ between epochs
    results = {}
    for cache in (False, True):
        teacher = tiny_model("gpt2", task="causal_lm", seed=1)
        calls: list[int] = []
        teacher.register_forward_hook(lambda module, args, output, calls=calls: calls.append(1))
        student = tiny_model("gpt2", task="causal_lm", seed=0)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, train_dataset=dataset,
                                      data_collator=_pad_collate,
                                      args=_args(tmp_path, cache_teacher_logits=cache, num_train_epochs=2,
                                                 max_steps=-1, learning_rate=1e-3))
        trainer.train()
        results[cache] = (len(calls), _state(student), len(trainer._teacher_cache))
    assert results[False][0] == 6 and results[True][0] == 3  # 3 batches a epoch; epoch 2 is served from the cache
    assert results[True][2] == 6
    for name, value in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_teacher_logit_cache_detects_a_reused_key(tmp_path):
    dataset = [{**row, "idx": 0} for row in _lm_dataset([3, 4])]  # the same key for two different examples
    trainer = DistillationTrainer(model=tiny_model("gpt2", task="causal_lm"), data_collator=_pad_collate,
                                  teacher_model=tiny_model("gpt2", task="causal_lm", seed=1), train_dataset=dataset,
                                  args=_args(tmp_path, cache_teacher_logits=True, teacher_cache_key="idx",
                                             per_device_train_batch_size=1))
    with pytest.raises(ConfigError, match="idx=0 was first seen with other token ids"):
        trainer.train()


class _CompactFFN(TrainerCallback):
    """Stands in for MovementPruningCallback: after step 1 it slices half the FFN neurons out of the student."""

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step != 1:
            return
        keep = torch.arange(24)
        replaced = {}
        for layer in model.bert.encoder.layer:
            old_in, old_out = layer.intermediate.dense, layer.output.dense
            layer.intermediate.dense = prune_linear_layer(old_in, keep, dim=0)
            layer.output.dense = prune_linear_layer(old_out, keep, dim=1)
            for old, new in ((old_in, layer.intermediate.dense), (old_out, layer.output.dense)):
                replaced.update({id(old.weight): new.weight, id(old.bias): new.bias})
        for group in optimizer.param_groups:
            for i, param in enumerate(group["params"]):
                if id(param) in replaced:
                    optimizer.state.pop(param, None)
                    group["params"][i] = replaced[id(param)]


def test_trainer_works_with_a_callback_that_compacts_the_student(tmp_path):
    student, teacher = tiny_model("bert", seed=0), tiny_model("bert", seed=1)
    teacher_before = _state(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, train_dataset=_cls_dataset(6),
                                  args=_args(tmp_path, max_steps=3, hidden_distill_weight=1.0),
                                  callbacks=[_CompactFFN()])
    trainer.train()
    assert student.bert.encoder.layer[0].intermediate.dense.out_features == 24
    assert teacher.bert.encoder.layer[0].intermediate.dense.out_features == 48
    entries = _log_entries(trainer)
    assert len(entries) == 3 and all(math.isfinite(e["loss"]) and e["hidden_loss"] > 0 for e in entries)
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert copy.deepcopy(student)(**_pad_collate(_cls_dataset(1))).logits.shape == (1, 2)
