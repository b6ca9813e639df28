"""``PruningConfig``: what to prune, how to score it, and on which schedule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from hfprune.pruning.units import HEAD_GRANULARITIES
from hfprune.utils.config import ConfigMixin, check_choice, check_fraction, check_int, check_number, field_help

if TYPE_CHECKING:
    from transformers import PretrainedConfig

ALLOCATIONS = ("global", "per_layer", "uniform")
NONFINITE_POLICIES = ("stop", "skip")
WEIGHT_ALLOCATIONS = ("per_matrix", "global")


def scorer_names() -> list[str]:
    """The registered unit scorers (imported late: the scorers import the pruning machinery)."""
    from hfprune.pruning.scoring import SCORERS

    return sorted(SCORERS)


@dataclass
class PruningConfig(ConfigMixin):
    """Structured pruning of attention heads and FFN neurons, and weight-level pruning of the matrices they live in.

    Sparsities are fractions of units (or weights) removed; the schedule ramps them all up cubically
    (Zhu & Gupta 2017) between the warm-up and the cool-down, as fractions of the run's optimizer steps, with
    masks updated at the same steps. ``weight_sparsity`` applies to the weights that head / FFN pruning leaves.
    """

    config_file_name = "pruning_config.json"

    head_sparsity: float = field_help(0.0, "Fraction of attention heads to remove, in [0, 1).")
    ffn_sparsity: float = field_help(0.0, "Fraction of FFN neurons to remove, in [0, 1).")
    scoring: str = field_help(
        "snip_momentum", "Unit scoring method, a name in hfprune.pruning.scoring.SCORERS. The default measured best "
        "on MiniLM SST-2 (3 seeds, paired tests; benchmarks/accuracy_seeds, benchmarks/accuracy_paper_budget).",
        choices=scorer_names
    )
    regularization: float = field_help(
        1.0, "soft_movement only: final weight of the L1 penalty on sigmoid(scores) (Sanh et al. 2020), >= 0, "
        "ramping with the threshold. Scores move by about 1 per step (movement over its RMS); the penalty lowers "
        "each by weight * sigmoid'(score) (up to weight / 4), so units must earn their place. 0 turns it off.")
    threshold: float = field_help(
        0.5, "soft_movement only: final threshold on sigmoid(score), in (0, 1); it ramps from 0 with the cubic "
        "schedule, units below it are removed, at most head_sparsity / ffn_sparsity of them (lowest scores first).")
    allocation: str = field_help(
        "global", "'global': rank units of all layers together; 'per_layer': remove the same fraction in each layer; "
        "'uniform': keep the same widths in every layer, so that where the config can express them (FFN width "
        "always; head counts for decoders with a head_dim field, e.g. Llama, Qwen2, Mistral) the saved model is a "
        "standard transformers checkpoint that plain from_pretrained loads."
    )
    head_granularity: str = field_help(
        "group", "Unit of attention pruning for grouped-query attention (Llama, Qwen2, Mistral): 'group' removes "
        "whole key/value groups (the k/v head with every query head that reads it; query heads per k/v head stay); "
        "'query' removes single query heads while every kept group keeps the same number of them (a group goes with "
        "its last query head). Both are the same for ordinary multi-head attention."
    )
    min_heads_per_layer: int = field_help(
        1, "Heads every layer keeps. 0 allows removing a layer's whole attention block (its output is then the "
        "attention output bias alone).")
    min_neurons_per_layer: int = field_help(
        1, "FFN neurons every layer keeps. 0 allows removing a layer's whole FFN block (its output is then the FFN "
        "output bias alone).")
    layer_sparsity: float = field_help(
        0.0, "Fraction of transformer layers to remove, in [0, 1), on the same schedule: the layers of lowest block "
        "influence (1 - cos(input, output) on the training batches, ShortGPT) go (hfprune.pruning.layers). Needs data "
        "(a calibration dataloader for one-shot pruning); at least one layer stays.")
    ffn_round_to: int = field_help(
        1, "Keep a multiple of this many FFN neurons in every layer (or all of them), e.g. 16 or 32: odd GEMM "
        "widths run slower than the FLOPs say on CPU kernels. 1 turns rounding off.")
    head_round_to: int = field_help(
        1, "Keep a multiple of this many heads in every layer (or all of them). 1 turns rounding off.")
    warmup_ratio: float = field_help(0.1, "Fraction of optimizer steps before pruning starts (scores accumulate).")
    cooldown_ratio: float = field_help(
        0.2, "Fraction of optimizer steps at the end with the final masks frozen, to recover accuracy."
    )
    mask_update_interval: int = field_help(10, "Optimizer steps between two mask updates while sparsity ramps up.")
    weight_sparsity: float = field_help(
        0.0, "Fraction of the query/key/value, attention-output and FFN weights to zero, among those left by head "
        "and FFN pruning, in [0, 1). 0.5 for the 2:4 methods."
    )
    weight_method: str = field_help(
        "movement", "Weight pruning method: one of hfprune.pruning.weight.WEIGHT_METHODS (movement: hard top-k "
        "movement; soft_movement: learned scores over a threshold; magnitude: gradual magnitude; 2:4 and "
        "2:4_movement: 2 of every 4 consecutive input weights kept by magnitude or by movement)."
    )
    weight_allocation: str = field_help(
        "per_matrix", "'per_matrix': the same weight sparsity in every matrix; 'global': rank the weights of all "
        "matrices together."
    )
    compact_on_train_end: bool = field_help(
        True, "Physically remove the pruned units and zero the pruned weights when training ends."
    )
    on_nonfinite: str = field_help(
        "stop", "When a step's loss or gradients hold NaN or inf: 'stop' raises an error naming the model, the step "
        "and the learning rate (nothing is saved); 'skip' drops that step's gradients (the optimizer leaves every "
        "weight as it was), skips its score accumulation and mask update, and logs a warning. Non-finite input "
        "weights, or weights that became non-finite, stop the run either way.")
    seed: int = field_help(42, "Seed of the random scorer (identical on every process and on resume).")
    flops_seq_len: int = field_help(128, "Sequence length at which FLOPs are reported.")
    latency_target: float = field_help(
        0.0, "Prune to this predicted speedup over the dense model (> 1) on this machine's CPU, at latency_batch_size, "
        "latency_seq_len and latency_threads, instead of head_sparsity / ffn_sparsity: per-layer widths are chosen "
        "against a latency table measured once and cached (hfprune.pruning.latency_table). 0 turns it off.")
    latency_target_ms: float = field_help(
        0.0, "Like latency_target, as a predicted forward latency in milliseconds (> 0); 0 turns it off.")
    latency_batch_size: int = field_help(1, "Batch size at which the latency table is measured (>= 1).")
    latency_seq_len: int = field_help(128, "Sequence length at which the latency table is measured (>= 1).")
    latency_threads: int = field_help(1, "CPU threads with which the latency table is measured (>= 1).")

    def __post_init__(self) -> None:
        name = self.owner()  # PruningConfig, or pruning in a recipe
        check_fraction(name, "head_sparsity", self.head_sparsity)
        check_fraction(name, "ffn_sparsity", self.ffn_sparsity)
        check_fraction(name, "layer_sparsity", self.layer_sparsity)
        check_choice(name, "scoring", self.scoring, scorer_names())
        check_number(name, "regularization", self.regularization, minimum=0.0)
        if not (isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
                and 0 < self.threshold < 1):
            from hfprune.errors import ConfigError

            raise ConfigError(f"{name}.threshold: expected a number in (0, 1), got {self.threshold!r}")
        check_choice(name, "allocation", self.allocation, ALLOCATIONS)
        check_choice(name, "head_granularity", self.head_granularity, HEAD_GRANULARITIES)
        for field, block in (("min_heads_per_layer", "attention"), ("min_neurons_per_layer", "FFN")):
            if self.allocation == "uniform" and getattr(self, field) == 0:
                from hfprune.errors import ConfigError

                raise ConfigError(f"{name}.{field}: allocation 'uniform' keeps the same widths in every layer, so "
                                  f"expected >= 1 (0 could remove every layer's {block} block)")
        if self.allocation == "uniform" and self.scoring == "soft_movement":
            from hfprune.errors import ConfigError

            raise ConfigError(f"{name}.allocation: 'uniform' needs one width for every layer, which soft_movement's "
                              "per-unit threshold does not give; expected 'global' or 'per_layer' with soft_movement")
        check_int(name, "min_heads_per_layer", self.min_heads_per_layer, minimum=0)
        check_int(name, "min_neurons_per_layer", self.min_neurons_per_layer, minimum=0)
        check_int(name, "ffn_round_to", self.ffn_round_to, minimum=1)
        check_int(name, "head_round_to", self.head_round_to, minimum=1)
        check_fraction(name, "warmup_ratio", self.warmup_ratio)
        check_fraction(name, "cooldown_ratio", self.cooldown_ratio)
        if self.warmup_ratio + self.cooldown_ratio >= 1:
            from hfprune.errors import ConfigError

            raise ConfigError(
                f"{name}.warmup_ratio + cooldown_ratio: expected < 1 to leave steps for pruning, "
                f"got {self.warmup_ratio} + {self.cooldown_ratio}"
            )
        check_int(name, "mask_update_interval", self.mask_update_interval, minimum=1)
        check_choice(name, "on_nonfinite", self.on_nonfinite, NONFINITE_POLICIES)
        check_int(name, "seed", self.seed, minimum=0)
        check_int(name, "flops_seq_len", self.flops_seq_len, minimum=1)
        self._check_weights(name)
        self._check_latency(name)
        if not isinstance(self.compact_on_train_end, bool):
            from hfprune.errors import ConfigError

            raise ConfigError(f"{name}.compact_on_train_end: expected true or false, got {self.compact_on_train_end!r}")

    def _check_weights(self, name: str) -> None:
        from hfprune.errors import ConfigError
        from hfprune.pruning.weight.methods import WEIGHT_METHODS

        check_fraction(name, "weight_sparsity", self.weight_sparsity)
        check_choice(name, "weight_method", self.weight_method, tuple(WEIGHT_METHODS))
        check_choice(name, "weight_allocation", self.weight_allocation, WEIGHT_ALLOCATIONS)
        if self.layer_sparsity > 0 and self.weight_sparsity > 0:
            raise ConfigError(f"{name}.weight_sparsity: with layer_sparsity > 0, expected 0 (weight masks do not "
                              f"follow removed layers yet), got {self.weight_sparsity!r}")
        pattern = WEIGHT_METHODS[self.weight_method].pattern_sparsity()
        if pattern is not None and self.weight_sparsity != pattern:
            raise ConfigError(
                f"{name}.weight_sparsity: weight_method {self.weight_method!r} fixes the weight sparsity, so expected "
                f"{pattern}, got {self.weight_sparsity!r}"
            )

    def result_dict(self) -> dict[str, Any]:
        """The settings that determine a finished run's result, for fingerprints: ``on_nonfinite`` is left out (a
        run that finished under "stop" met no non-finite step, so "skip" gives the same result), which keeps the
        fingerprints of runs made before the option existed."""
        # layer_sparsity 0 is left out too, so runs made before it existed keep their fingerprints
        return {k: v for k, v in self.to_dict().items()
                if k != "on_nonfinite" and not (k == "layer_sparsity" and not v)}

    def check_model(self, config: PretrainedConfig, where: str, prefix: str = "PruningConfig") -> None:
        """The per-layer minimums leave something to prune in a model of ``config`` (``where`` names it): a
        ``min_heads_per_layer`` of 10 on a 4-head model would otherwise be accepted and remove no head at all."""
        from hfprune.errors import ConfigError
        from hfprune.pruning.architectures import get_architecture

        spec = get_architecture(config)
        if self.layer_sparsity > 0 and getattr(config, "scale_attn_by_inverse_layer_idx", False):
            raise ConfigError(f"{prefix}.layer_sparsity: {where} scales attention by its layer index "
                              "(scale_attn_by_inverse_layer_idx), which removing layers would change; expected 0")
        layers = int(config.num_hidden_layers)
        if 0 < self.layer_sparsity and round(self.layer_sparsity * layers) == 0:
            raise ConfigError(f"{prefix}.layer_sparsity: {self.layer_sparsity!r} of the {layers} layers of {where} "
                              f"removes none; expected 0 or more than {0.5 / layers:.3g}")
        for sparsity, name, minimum, units, what in (
            ("head_sparsity", "min_heads_per_layer", self.min_heads_per_layer, spec.num_heads(config), "heads"),
            ("ffn_sparsity", "min_neurons_per_layer", self.min_neurons_per_layer, spec.ffn_size(config),
             "FFN neurons"),
        ):
            if getattr(self, sparsity) > 0 and minimum >= units:
                raise ConfigError(f"{prefix}.{name}: expected fewer than the {units} {what} per layer of {where} "
                                  f"(with {sparsity} {getattr(self, sparsity)} there must be some to remove), got "
                                  f"{minimum}")

    def as_control(self) -> Self:
        """These settings with every sparsity and latency target 0: the same training (scorer, schedule, epochs,
        distillation around it), nothing removed; the control that separates pruning from the extra training. A
        pattern weight method (2:4) fixes its sparsity, so the control takes the default weight method, unused at
        weight sparsity 0."""
        from hfprune.pruning.weight.methods import WEIGHT_METHODS

        pattern = WEIGHT_METHODS[self.weight_method].pattern_sparsity() is not None
        return dataclasses.replace(
            self, head_sparsity=0.0, ffn_sparsity=0.0, layer_sparsity=0.0, weight_sparsity=0.0, latency_target=0.0,
            latency_target_ms=0.0,
            **({"weight_method": PruningConfig.__dataclass_fields__["weight_method"].default} if pattern else {}))

    @property
    def prunes_nothing(self) -> bool:
        """No sparsity and no latency target: the run trains (and distils) like a pruning run, removing nothing."""
        return not (self.head_sparsity or self.ffn_sparsity or self.layer_sparsity or self.weight_sparsity
                    or self.latency_targeted)

    @property
    def latency_targeted(self) -> bool:
        return bool(self.latency_target or self.latency_target_ms)

    def _check_latency(self, name: str) -> None:
        """A latency target decides both kinds' widths itself, so it excludes the settings that decide them too."""
        from hfprune.errors import ConfigError

        check_number(name, "latency_target_ms", self.latency_target_ms, minimum=0.0)
        check_number(name, "latency_target", self.latency_target, minimum=0.0)
        if 0 < self.latency_target <= 1:
            raise ConfigError(f"{name}.latency_target: expected a speedup > 1 (or 0 for none), "
                              f"got {self.latency_target!r}")
        for field in ("latency_batch_size", "latency_seq_len", "latency_threads"):
            check_int(name, field, getattr(self, field), minimum=1)
        if not self.latency_targeted:
            return
        field = "latency_target" if self.latency_target else "latency_target_ms"
        clashes = {
            "latency_target_ms": bool(self.latency_target and self.latency_target_ms),
            "head_sparsity": self.head_sparsity > 0, "ffn_sparsity": self.ffn_sparsity > 0,
            "weight_sparsity": self.weight_sparsity > 0,
            "allocation": self.allocation == "uniform",
            "scoring": self.scoring == "soft_movement", "head_granularity": self.head_granularity != "group",
        }
        expected = {"latency_target_ms": "0 (one target at a time)", "head_sparsity": "0 (the budget sets widths)",
                    "ffn_sparsity": "0 (the budget sets widths)",
                    "weight_sparsity": "0 (not in the latency model)",
                    "allocation": "'global' or 'per_layer' (the budget sets per-layer widths)",
                    "scoring": "a scorer other than soft_movement (its threshold sets the widths)",
                    "head_granularity": "'group'"}
        for clash, bad in clashes.items():
            if bad:
                raise ConfigError(f"{name}.{clash}: with {field} set, expected {expected[clash]}, got "
                                  f"{getattr(self, clash)!r}")
