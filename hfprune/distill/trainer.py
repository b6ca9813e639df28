"""``DistillationTrainer``: a ``transformers.Trainer`` whose loss distils a frozen dense teacher into the student.

The trainer owns the loss and nothing else: pruning during training is a ``TrainerCallback``'s job
(``MovementPruningCallback`` masks or compacts the student in place), so no shape of the student is cached here.

Usage::

    args = DistillationArguments(output_dir="out", distill_alpha=0.5, distill_temperature=2.0, use_cpu=True)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=train,
                                  callbacks=[MovementPruningCallback(...)])
    trainer.train()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from hfprune.distill.loss import distillation_loss, hidden_state_loss, loss_item_mask, uniform_layer_map
from hfprune.errors import ConfigError
from hfprune.utils.config import check_fraction, check_number, field_help
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

_OWNER = "DistillationArguments"


def _parse_layer_map(value: Any) -> list[list[int]] | None:
    """Normalise a layer map given as pairs ``[[s, t], ...]`` or as a string ``"s:t,s:t"`` (command lines)."""
    if value is None:
        return None
    items = [part for part in value.replace(",", " ").split()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{_OWNER}.hidden_layer_map: expected a non-empty list of [student_layer, teacher_layer] "
                          f"pairs or a string like '1:2,2:4', got {value!r}")
    pairs = []
    for item in items:
        pair = item.split(":") if isinstance(item, str) else item
        try:
            pair = [int(p) if isinstance(p, str) else p for p in pair] if isinstance(pair, (list, tuple)) else None
        except ValueError:
            pair = None
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pair)):
            raise ConfigError(f"{_OWNER}.hidden_layer_map: each entry must be a pair of layer indices >= 0 "
                              f"(0 = embeddings), got {item!r}")
        pairs.append(list(pair))
    return pairs


@dataclass
class DistillationArguments(TrainingArguments):
    """``TrainingArguments`` plus the distillation settings of ``DistillationTrainer``."""

    distill_alpha: float = field_help(
        0.5, "Weight of the hard-label cross-entropy; the soft-target KD term gets 1 - alpha. In [0, 1].")
    distill_temperature: float = field_help(
        2.0, "Softmax temperature T of the KD term (> 0); the KD term is scaled by T^2 to keep its gradient scale.")
    hidden_distill_weight: float = field_help(
        0.0, "Weight (>= 0) of the hidden-state MSE between mapped student and teacher layers; 0 turns it off.")
    hidden_layer_map: list[list[int]] | str | None = field_help(
        None, "Pairs [student_layer, teacher_layer] of hidden_states indices (0 = embeddings) to match, or a string "
              "'1:2,2:4'. Default: identity over layers 1..N when depths are equal, else a uniform map.")
    cache_teacher_logits: bool = field_help(
        False, "Keep the teacher's training-set logits in CPU memory, keyed by teacher_cache_key, and run the teacher "
               "once per example. For a fixed dataset whose examples are right-padded (or unpadded).")
    teacher_cache_key: str = field_help(
        "distill_index", "Column holding a unique integer per training example, the key of the teacher-logit cache. "
                         "The trainer adds it (0..n-1) to a map-style train_dataset that lacks it.")

    def __post_init__(self) -> None:
        check_fraction(_OWNER, "distill_alpha", self.distill_alpha, allow_one=True)
        check_number(_OWNER, "distill_temperature", self.distill_temperature, minimum=0.0, inclusive=False)
        check_number(_OWNER, "hidden_distill_weight", self.hidden_distill_weight, minimum=0.0, inclusive=True)
        self.hidden_layer_map = _parse_layer_map(self.hidden_layer_map)
        if not isinstance(self.cache_teacher_logits, bool):
            raise ConfigError(f"{_OWNER}.cache_teacher_logits: expected a bool, got {self.cache_teacher_logits!r}")
        if not isinstance(self.teacher_cache_key, str) or not self.teacher_cache_key:
            raise ConfigError(f"{_OWNER}.teacher_cache_key: expected a column name, got {self.teacher_cache_key!r}")
        if self.cache_teacher_logits and self.hidden_distill_weight > 0:
            raise ConfigError(f"{_OWNER}.cache_teacher_logits caches logits only, but hidden_distill_weight="
                              f"{self.hidden_distill_weight} needs the teacher's hidden states at every step")
        super().__post_init__()


class _IndexedDataset(torch.utils.data.Dataset):
    """A map-style dataset of dicts with the example's position added under ``key``."""

    def __init__(self, dataset: Any, key: str) -> None:
        self.dataset, self.key = dataset, key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], self.key: index}


def _with_index_column(dataset: Any, key: str) -> Any:
    """``dataset`` with a unique integer per example under ``key`` (positions 0..n-1 when the column is missing)."""
    import datasets

    if dataset is None or isinstance(dataset, (datasets.IterableDataset, torch.utils.data.IterableDataset)):
        return dataset  # cannot be indexed: each batch must bring the key itself, checked in compute_loss
    if isinstance(dataset, datasets.Dataset):
        return dataset if key in dataset.column_names else dataset.add_column(key, list(range(len(dataset))))
    if len(dataset) > 0 and isinstance(dataset[0], Mapping) and key in dataset[0]:
        return dataset
    return _IndexedDataset(dataset, key)


def _is_causal_lm(model: nn.Module) -> bool:
    return type(model).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


def _logit_width(model: nn.Module) -> tuple[str, int | None]:
    """What the last dimension of the model's logits counts, and its size from the head or the config."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return "vocabulary size", int(head.weight.shape[0])
    return "label count (config.num_labels)", getattr(getattr(model, "config", None), "num_labels", None)


class DistillationTrainer(Trainer):
    """Trains the student (``model``) against a frozen ``teacher_model`` with ``distillation_loss``.

    The teacher is put in eval mode, gets ``requires_grad=False`` on every parameter and runs under ``no_grad`` on the
    student's device; it is never saved with checkpoints. Loss parts are logged as ``ce_loss``, ``kd_loss`` and
    ``hidden_loss`` (``eval_*`` in evaluation metrics). Under gradient accumulation the loss of every micro-batch is a
    sum over items divided by the item count of the whole accumulated batch, so accumulation equals one large batch.

    With ``cache_teacher_logits`` the teacher runs once per training example: its logits for the attended tokens are
    stored on the CPU under the example's ``teacher_cache_key`` value, with the token ids to detect a key reused for a
    different example. Keys travel with the examples, so any shuffling is fine. Evaluation never uses the cache.
    """

    # get_batch_samples always supplies the item count, and compute_loss divides by it
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: nn.Module | None = None,
        args: DistillationArguments | None = None,
        *,
        teacher_model: nn.Module,
        train_dataset: Any = None,
        **trainer_kwargs: Any,
    ) -> None:
        args = DistillationArguments() if args is None else args
        if not isinstance(args, DistillationArguments):
            raise ConfigError(f"DistillationTrainer: args must be DistillationArguments, got {type(args).__name__}")
        if trainer_kwargs.get("compute_loss_func") is not None:
            raise ConfigError("DistillationTrainer: compute_loss_func is not supported; the distillation loss is the "
                              "trainer's own (configure it through DistillationArguments)")
        if args.label_smoothing_factor != 0:
            raise ConfigError("DistillationTrainer: label_smoothing_factor is not supported; the KD term already "
                              f"softens the targets (got {args.label_smoothing_factor})")
        if not isinstance(teacher_model, nn.Module):
            raise ConfigError(f"DistillationTrainer: teacher_model must be a torch module, got {teacher_model!r}")
        if args.cache_teacher_logits:
            train_dataset = _with_index_column(train_dataset, args.teacher_cache_key)
        super().__init__(model=model, args=args, train_dataset=train_dataset, **trainer_kwargs)

        student = self.accelerator.unwrap_model(self.model)
        self._check_pair(student, teacher_model)
        self.teacher_model = teacher_model.eval().requires_grad_(False)
        self.teacher_model.to(next(student.parameters()).device)
        self._causal_lm = _is_causal_lm(student)
        self._token_level_without_labels = _logit_width(student)[0] == "vocabulary size"
        self.layer_map = self._resolve_layer_map(student, teacher_model) if args.hidden_distill_weight > 0 else None
        self._teacher_cache: dict[int, tuple[torch.Tensor | None, torch.Tensor]] = {}
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._eval_batches = 0
        self._train_parts_since_step = 0  # global step before the first micro-batch now in the training sums
        logger.info("distilling %s into %s: alpha=%s, T=%s, hidden weight=%s, layer map=%s, cache=%s",
                    type(teacher_model).__name__, type(student).__name__, args.distill_alpha,
                    args.distill_temperature, args.hidden_distill_weight, self.layer_map, args.cache_teacher_logits)

    # ---- set-up checks ----

    @staticmethod
    def _check_pair(student: nn.Module, teacher: nn.Module) -> None:
        """Reject a teacher that cannot be compared with the student, naming both values."""
        if teacher is student or {id(p) for p in teacher.parameters()} & {id(p) for p in student.parameters()}:
            raise ConfigError("DistillationTrainer: teacher_model shares parameters with the student; freezing the "
                              "teacher would freeze them too (pass a separate copy, e.g. copy.deepcopy(model))")
        if _is_causal_lm(student) != _is_causal_lm(teacher):
            raise ConfigError(f"teacher and student are different tasks: student is {type(student).__name__}, "
                              f"teacher is {type(teacher).__name__}")
        (what, student_width), (teacher_what, teacher_width) = _logit_width(student), _logit_width(teacher)
        if what != teacher_what or student_width != teacher_width:
            raise ConfigError(f"teacher and student disagree on {what}: student has {student_width}, "
                              f"teacher has {teacher_width}")

    def _resolve_layer_map(self, student: nn.Module, teacher: nn.Module) -> list[list[int]]:
        """The configured layer map, or the default one, checked against both depths and hidden widths."""
        depths = [getattr(m.config, "num_hidden_layers", None) for m in (student, teacher)]
        if None in depths:
            raise ConfigError("hidden-state distillation needs config.num_hidden_layers on student and teacher")
        layer_map = self.args.hidden_layer_map or uniform_layer_map(*depths)
        for student_layer, teacher_layer in layer_map:
            if student_layer > depths[0] or teacher_layer > depths[1]:
                raise ConfigError(f"{_OWNER}.hidden_layer_map: pair [{student_layer}, {teacher_layer}] is out of "
                                  f"range; student has layers 0..{depths[0]}, teacher has 0..{depths[1]}")
        widths = [getattr(m.config, "hidden_size", None) for m in (student, teacher)]
        if None not in widths and widths[0] != widths[1]:
            raise ConfigError(f"hidden-state distillation needs equal hidden sizes: student has {widths[0]}, "
                              f"teacher has {widths[1]}")
        return layer_map

    # ---- data plumbing ----

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the cache key column: the student's forward does not take it, compute_loss pops it."""
        super()._set_signature_columns_if_needed()
        if self.args.cache_teacher_logits and self.args.teacher_cache_key not in self._signature_columns:
            self._signature_columns.append(self.args.teacher_cache_key)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """Fetch the accumulated micro-batches and count their loss items (the distillation loss's own divisor).

        The base Trainer counts only when the model takes loss kwargs and, for GPT-2, counts position 0 as well; the
        distillation loss needs exactly the items it sums over, with or without labels.
        """
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples:
            return batch_samples, None
        count = sum(self._item_mask(batch).sum() for batch in batch_samples).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return batch_samples, count.clamp(min=1)

    def _item_mask(self, batch: Mapping[str, Any]) -> torch.Tensor:
        labels, attention_mask = batch.get("labels"), batch.get("attention_mask")
        reference = next(t for t in (batch.get("input_ids"), attention_mask, labels) if t is not None)
        token_level = labels.dim() >= 2 if labels is not None else self._token_level_without_labels
        shape = reference.shape[:2] if token_level else reference.shape[:1]
        return loss_item_mask(shape, labels, attention_mask, token_level=token_level, causal_lm=self._causal_lm)

    # ---- the loss ----

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """``alpha * CE + (1 - alpha) * T^2 * KL + hidden_distill_weight * MSE`` for one (micro-)batch."""
        args = self.args
        inputs = dict(inputs)
        cache_keys = inputs.pop(args.teacher_cache_key, None) if args.cache_teacher_logits else None
        labels = inputs.pop("labels", None)  # the student's own loss would be computed and thrown away
        want_hidden = args.hidden_distill_weight > 0
        if want_hidden:
            inputs["output_hidden_states"] = True
        training = model.training
        if not training:
            num_items_in_batch = None  # evaluation reports per-batch means, like the base Trainer

        outputs = model(**inputs)
        teacher_logits, teacher_hidden = self._teacher_outputs(inputs, cache_keys, training)
        result = distillation_loss(outputs.logits, teacher_logits, labels, args.distill_temperature,
                                   args.distill_alpha, inputs.get("attention_mask"), num_items_in_batch,
                                   causal_lm=self._causal_lm)
        loss = result.loss
        hidden = torch.zeros_like(loss)
        if want_hidden:
            hidden = hidden_state_loss(outputs.hidden_states, teacher_hidden, self.layer_map, result.item_mask,
                                       inputs.get("attention_mask"), num_items_in_batch)
            loss = loss + args.hidden_distill_weight * hidden
            # hidden states would otherwise be gathered as predictions during evaluation
            outputs = type(outputs)(**{k: v for k, v in outputs.items() if k != "hidden_states"})
        self._record("train" if training else "eval", ce_loss=result.ce, kd_loss=result.kd, hidden_loss=hidden)

        if training and num_items_in_batch is not None and args.average_tokens_across_devices:
            # the divisor counts items on all processes while DDP averages gradients over processes
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _teacher_outputs(
        self, inputs: dict[str, Any], cache_keys: torch.Tensor | None, training: bool
    ) -> tuple[torch.Tensor, Sequence[torch.Tensor] | None]:
        """Teacher logits (and hidden states when asked), from the cache when every example of the batch is in it."""
        if training and self.args.cache_teacher_logits and cache_keys is None:
            raise ConfigError(f"cache_teacher_logits: the training batch has no '{self.args.teacher_cache_key}' "
                              "column; add a unique integer per example to the dataset (or use a map-style dataset, "
                              "to which the trainer adds it)")
        device = next(v.device for v in inputs.values() if isinstance(v, torch.Tensor))
        if next(self.teacher_model.parameters()).device != device:
            self.teacher_model.to(device)  # e.g. the student was moved after the trainer was built
        self.teacher_model.eval()
        keys = [int(k) for k in cache_keys.tolist()] if training and cache_keys is not None else None
        if keys is not None:
            cached = self._cached_teacher_logits(inputs, keys, device)
            if cached is not None:
                return cached, None
        with torch.no_grad():
            outputs = self.teacher_model(**inputs)
        if keys is not None:
            self._store_teacher_logits(inputs, keys, outputs.logits)
        return outputs.logits, outputs.get("hidden_states")

    @staticmethod
    def _example_tokens(inputs: Mapping[str, Any], row: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The attended positions of one example (None: no token-level inputs) and its token ids there."""
        input_ids, attention_mask = inputs.get("input_ids"), inputs.get("attention_mask")
        if attention_mask is not None:
            attended = attention_mask[row].bool().cpu()
        elif input_ids is not None:
            attended = torch.ones(input_ids.shape[1], dtype=torch.bool)
        else:
            return None, None
        return attended, (input_ids[row].cpu()[attended] if input_ids is not None else None)

    def _store_teacher_logits(self, inputs: Mapping[str, Any], keys: list[int], logits: torch.Tensor) -> None:
        """Cache each example's logits on the CPU: attended positions only, so later padding lengths do not matter."""
        logits = logits.detach().cpu()
        for row, key in enumerate(keys):
            attended, ids = self._example_tokens(inputs, row)
            token_level = logits.dim() == 3 and attended is not None
            self._teacher_cache[key] = (ids, (logits[row][attended] if token_level else logits[row]).clone())

    def _cached_teacher_logits(
        self, inputs: Mapping[str, Any], keys: list[int], device: torch.device
    ) -> torch.Tensor | None:
        """The batch's teacher logits rebuilt from the cache, or None when an example is not cached yet."""
        if any(key not in self._teacher_cache for key in keys):
            return None
        rows = []
        for row, key in enumerate(keys):
            ids, row_logits = self._teacher_cache[key]
            attended, current = self._example_tokens(inputs, row)
            if ids is not None and current is not None and not torch.equal(ids, current):
                raise ConfigError(f"cache_teacher_logits: key {self.args.teacher_cache_key}={key} was first seen "
                                  "with other token ids; the key column must be unique per example and the dataset "
                                  "fixed")
            if row_logits.dim() == 2 and attended is not None:
                full = row_logits.new_zeros(attended.shape[0], row_logits.shape[-1])
                full[attended] = row_logits  # padded positions stay 0: the loss masks them out
                row_logits = full
            rows.append(row_logits)
        return torch.stack(rows).to(device)

    # ---- logging of the loss parts ----

    def _record(self, mode: str, **parts: torch.Tensor) -> None:
        sums = self._component_sums[mode]
        if mode == "train" and not sums:
            self._train_parts_since_step = self.state.global_step
        for name, value in parts.items():
            value = value.detach()
            sums[name] = sums[name] + value if name in sums else value
        if mode == "eval":
            self._eval_batches += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the training loss parts (averaged over the optimizer steps since the last log) to training logs."""
        steps = self.state.global_step - self._train_parts_since_step
        if "loss" in logs and steps > 0 and self._component_sums["train"]:
            # micro-batch parts are normalised by the accumulated item count, so their sum is the step's value
            for name, total in self._component_sums["train"].items():
                logs[name] = total.item() / steps
            self._component_sums["train"] = {}
        super().log(logs, start_time)

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        """Run the base evaluation loop and add the mean loss parts over its batches to its metrics."""
        self._component_sums["eval"], self._eval_batches = {}, 0
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        prefix = metric_key_prefix
        if self._eval_batches:
            for name, total in self._component_sums["eval"].items():
                output.metrics[f"{prefix}_{name}"] = total.item() / self._eval_batches
        self._component_sums["eval"], self._eval_batches = {}, 0
        return output

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Drop the cache key column, which a label-free prediction would otherwise pass to the model."""
        inputs = {k: v for k, v in inputs.items() if not (self.args.cache_teacher_logits
                                                         and k == self.args.teacher_cache_key)}
        return super().prediction_step(model, inputs, *args, **kwargs)
