"""Distillation losses: soft-target KD plus hard-label CE (Hinton et al. 2015) and hidden-state matching
(TinyBERT, CoFi), as plain functions so that they can be tested on hand-made logits and reused outside the trainer.

Every loss is a sum over *items* divided by a count. An item is one example for sequence classification and one
predicted token for token-level logits (causal LMs: ``logits[:, :-1]`` against ``labels[:, 1:]``, as transformers
shifts them). When ``num_items_in_batch`` is given the sum is divided by it instead of by this batch's own count, which
is how transformers 5 makes gradient accumulation over unevenly padded micro-batches equal one large batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hfprune.errors import ConfigError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class DistillationLossOutput:
    """The combined loss and its parts, each already normalised by the same item count.

    ``loss = alpha * ce + (1 - alpha) * kd``; ``ce`` is zero when no labels were given; ``num_items`` is how many items
    of *this* batch contributed (the divisor is ``num_items_in_batch`` when that was given) and ``item_mask`` which
    ones, so that further terms (hidden-state matching) can use the same items.
    """

    loss: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor
    num_items: int
    item_mask: torch.Tensor


def loss_item_mask(
    batch_shape: Sequence[int],
    labels: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    token_level: bool,
    causal_lm: bool,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Boolean mask of the items that enter the loss.

    ``batch_shape`` is ``(B,)`` for per-example logits or ``(B, L)`` for token-level ones. Token-level items are the
    positions whose label is not -100 and whose token is attended; for causal LMs position ``t`` predicts token
    ``t + 1``, so the mask is over ``t < L - 1`` and reads labels and attention mask at ``t + 1``. Per-example items are
    the examples whose label is not -100 (the attention mask does not select examples).
    """
    if token_level:
        batch, length = int(batch_shape[0]), int(batch_shape[1])
        length = length - 1 if causal_lm else length
        mask = torch.ones(batch, max(length, 0), dtype=torch.bool, device=device)
        if labels is not None:
            mask &= (labels[:, 1:] if causal_lm else labels).to(mask.device) != IGNORE_INDEX
        if attention_mask is not None:
            mask &= (attention_mask[:, 1:] if causal_lm else attention_mask).to(mask.device).bool()
        return mask
    mask = torch.ones(int(batch_shape[0]), dtype=torch.bool, device=device)
    if labels is not None:
        mask &= labels.to(mask.device) != IGNORE_INDEX
    return mask


def _check_hyperparameters(temperature: float, alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distillation_loss: alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ConfigError(f"distillation_loss: temperature must be a number > 0, got {temperature!r}")
    if math.isinf(temperature):
        raise ConfigError(f"distillation_loss: temperature must be finite, got {temperature!r}")


def check_logits_match(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Raise ConfigError naming both sizes when teacher and student logits cannot be compared."""
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        what = "vocabulary size" if student_logits.dim() == 3 else "label count"
        raise ConfigError(
            f"teacher and student disagree on {what} (last dimension of the logits): "
            f"student has {student_logits.shape[-1]}, teacher has {teacher_logits.shape[-1]}"
        )
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"teacher logits {tuple(teacher_logits.shape)} do not match student logits {tuple(student_logits.shape)}"
        )


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
    attention_mask: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    *,
    causal_lm: bool | None = None,
) -> DistillationLossOutput:
    """``alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.

    Logits are ``(B, C)`` (sequence classification) or ``(B, L, V)`` (token level; treated as a causal LM and shifted
    unless ``causal_lm=False``). Padding (label -100 or attention mask 0) is excluded from both terms, which use the
    same items. The T^2 factor keeps the soft-target gradients on the scale of the CE ones as T changes (Hinton et al.).
    """
    _check_hyperparameters(temperature, alpha)
    check_logits_match(student_logits, teacher_logits)
    if labels is None and alpha > 0:
        raise ConfigError(f"distillation_loss: alpha={alpha} weights a cross-entropy term, but no labels were given")
    if labels is not None and labels.is_floating_point():
        raise ConfigError("distillation_loss: labels must be class indices; regression and multi-label targets "
                          f"(floating-point labels of shape {tuple(labels.shape)}) are not supported")
    token_level = student_logits.dim() == 3
    causal = token_level if causal_lm is None else (causal_lm and token_level)
    mask = loss_item_mask(student_logits.shape[:-1], labels, attention_mask, token_level=token_level,
                          causal_lm=causal, device=student_logits.device)
    if causal:
        student_logits, teacher_logits = student_logits[:, :-1], teacher_logits[:, :-1]
        labels = labels[:, 1:] if labels is not None else None
    # float32 like transformers' own losses: log-softmax over a large vocabulary in half precision is lossy
    student = student_logits[mask].float()
    teacher = teacher_logits[mask].float().detach()

    zero = student.new_zeros(())
    ce_sum = F.cross_entropy(student, labels.to(mask.device)[mask], reduction="sum") if labels is not None else zero
    kl = F.kl_div(F.log_softmax(student / temperature, dim=-1), F.log_softmax(teacher / temperature, dim=-1),
                  reduction="none", log_target=True)
    kd_sum = kl.sum() * temperature**2

    num_items = int(mask.sum())
    divisor = num_items_in_batch if num_items_in_batch is not None else max(num_items, 1)
    ce, kd = ce_sum / divisor, kd_sum / divisor
    return DistillationLossOutput(loss=alpha * ce + (1.0 - alpha) * kd, ce=ce, kd=kd, num_items=num_items,
                                  item_mask=mask)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[list[int]]:
    """``[[s, t], ...]`` mapping student layer ``s`` (1-based, 0 is the embeddings) to teacher layer ``round(s*T/S)``.

    The last student layer always meets the last teacher layer (TinyBERT's ``g(m) = m * N / M``); equal depths give
    the identity map. Embedding outputs are not matched by default.
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ConfigError(f"uniform_layer_map: layer counts must be >= 1, got {student_layers} and {teacher_layers}")
    # integer round-half-up of s * T / S
    return [[s, (2 * s * teacher_layers + student_layers) // (2 * student_layers)]
            for s in range(1, student_layers + 1)]


def hidden_state_loss(
    student_hidden: Sequence[torch.Tensor],
    teacher_hidden: Sequence[torch.Tensor],
    layer_map: Sequence[Sequence[int]],
    item_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Mean-squared error between mapped hidden states, normalised over the same items as ``distillation_loss``.

    ``*_hidden`` are ``output_hidden_states`` tuples (index 0 = embeddings, i = output of layer i). Each item's error
    is the MSE over the hidden width averaged over the layer pairs; a per-example item (``item_mask`` of shape ``(B,)``)
    also averages over its attended tokens. Structured pruning keeps the hidden width, so differing widths are an error.
    """
    if not layer_map:
        raise ConfigError("hidden_state_loss: the layer map is empty")
    per_token = None
    for student_layer, teacher_layer in layer_map:
        for side, states, layer in (("student", student_hidden, student_layer), ("teacher", teacher_hidden,
                                                                                  teacher_layer)):
            if not 0 <= layer < len(states):
                raise ConfigError(f"hidden_layer_map: {side} layer {layer} is out of range [0, {len(states) - 1}]")
        student, teacher = student_hidden[student_layer], teacher_hidden[teacher_layer]
        if student.shape[-1] != teacher.shape[-1]:
            raise ConfigError(
                f"hidden-state distillation needs equal hidden sizes: student layer {student_layer} has "
                f"{student.shape[-1]}, teacher layer {teacher_layer} has {teacher.shape[-1]}"
            )
        error = (student.float() - teacher.float().detach()).pow(2).mean(dim=-1)
        per_token = error if per_token is None else per_token + error
    per_token = per_token / len(layer_map)

    if item_mask.dim() == 2:  # token-level items; a causal mask is one shorter (the last position predicts nothing)
        per_item = per_token[:, : item_mask.shape[1]][item_mask]
    else:
        weights = attention_mask.to(per_token.dtype) if attention_mask is not None else torch.ones_like(per_token)
        per_item = ((per_token * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1))[item_mask]
    divisor = num_items_in_batch if num_items_in_batch is not None else max(per_item.numel(), 1)
    return per_item.sum() / divisor
