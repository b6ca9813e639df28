"""Prune while distilling: MovementPruningCallback inside a DistillationTrainer run."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_model
from pruning_trainer_utils import synthetic_classification, training_args

from hfprune import DistillationArguments, DistillationTrainer, MovementPruningCallback, PruningConfig
from hfprune.pruning.units import UnitKind, unit_groups


@pytest.mark.parametrize("scoring", ["movement", "soft_movement"])  # soft movement's scores learn under the mask
def test_prune_while_distilling_compacts_student_and_leaves_teacher_untouched(tmp_path, tiny_inputs, scoring):
    student = tiny_model("bert", seed=0)
    teacher = copy.deepcopy(student)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    args = training_args(tmp_path, cls=DistillationArguments, max_steps=16, distill_alpha=0.5,
                         distill_temperature=2.0, hidden_distill_weight=1.0)
    callback = MovementPruningCallback(PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, mask_update_interval=2,
                                                     scoring=scoring, regularization=0.1))
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=synthetic_classification(), callbacks=[callback])
    trainer.train()
    assert [g.num_units for g in unit_groups(student, UnitKind.HEADS)] == [
        len(k) for k in student.config.hfprune_structure["kept_heads"]]
    assert sum(g.num_units for g in unit_groups(student, UnitKind.NEURONS)) == 48
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key])
    with torch.no_grad():
        assert torch.isfinite(student.eval()(**tiny_inputs).logits).all()
