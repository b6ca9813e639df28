"""Knowledge distillation from the dense teacher into the pruned student: the loss and the Trainer that uses it."""

from hfprune.distill.loss import DistillationLossOutput, distillation_loss, hidden_state_loss, uniform_layer_map
from hfprune.distill.trainer import DistillationArguments, DistillationTrainer

__all__ = [
    "DistillationArguments",
    "DistillationLossOutput",
    "DistillationTrainer",
    "distillation_loss",
    "hidden_state_loss",
    "uniform_layer_map",
]
