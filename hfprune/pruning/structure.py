"""``PrunedStructure``: which heads and FFN neurons each layer kept, in the dense model's numbering.

It rides in ``config.json`` (as ``config.hfprune_structure``), so a plain ``model.save_pretrained`` of a compacted
model records everything ``load_pruned`` needs to rebuild the exact shapes, and ``export_dense`` needs to put every
weight back where it came from.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

from transformers import PretrainedConfig, PreTrainedModel

from hfprune.errors import ConfigError
from hfprune.pruning.architectures import get_architecture
from hfprune.utils.config import matches_type, type_name

CONFIG_KEY = "hfprune_structure"
# a recorded dense width (heads or FFN neurons) the config cannot confirm may be at most this many times hidden_size
MAX_WIDTH_PER_HIDDEN = 16


@dataclass
class PrunedStructure:
    model_type: str
    dense_num_heads: int
    dense_ffn_size: int
    kept_heads: list[list[int]]
    kept_neurons: list[list[int]]
    dense_num_kv_heads: int | None = None
    """Key/value heads per layer of the dense model (grouped-query attention only)."""
    kept_layers: list[int] | None = None
    """The dense model's numbers of the layers still there, when whole layers were removed (``layer_sparsity``)."""
    dense_num_layers: int | None = None
    """Layers of the dense model, when whole layers were removed."""

    def layer_numbers(self) -> list[int]:
        """The dense model's number of each present layer."""
        return list(range(len(self.kept_heads))) if self.kept_layers is None else list(self.kept_layers)

    @classmethod
    def dense(cls, model: PreTrainedModel) -> PrunedStructure:
        spec = get_architecture(model)
        heads, ffn = spec.num_heads(model.config), spec.ffn_size(model.config)
        layers = int(model.config.num_hidden_layers)
        kv_heads = spec.num_kv_heads(model.config) if spec.kv_producers else None
        return cls(model.config.model_type, heads, ffn, [list(range(heads))] * layers, [list(range(ffn))] * layers,
                   kv_heads)

    @classmethod
    def of(cls, model: PreTrainedModel) -> PrunedStructure:
        """The structure recorded on the model, or the dense one if it was never compacted."""
        recorded = getattr(model.config, CONFIG_KEY, None)
        return cls.from_dict(recorded) if recorded else cls.dense(model)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> PrunedStructure:
        try:
            structure = cls(**payload)
        except TypeError as exc:
            raise ConfigError(f"{CONFIG_KEY}: malformed pruning structure in config.json ({exc})") from None
        structure.validate()
        return structure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Types first (a tampered or hand-written file may hold strings), then sorted unique in-range indices."""
        hints = typing.get_type_hints(type(self))
        for spec in fields(self):
            value, hint = getattr(self, spec.name), hints[spec.name]
            if not matches_type(value, hint):
                expected = "a list (one per layer) of lists of integer indices" if hint == list[list[int]] \
                    else type_name(hint)
                raise ConfigError(f"{CONFIG_KEY}.{spec.name}: expected {expected}, got {type(value).__name__} "
                                  f"{value!r}"[:300])
        if self.kept_layers is not None:
            limit = self.dense_num_layers if type(self.dense_num_layers) is int else 0
            if (sorted(set(self.kept_layers)) != self.kept_layers or len(self.kept_layers) != len(self.kept_heads)
                    or any(not 0 <= i < limit for i in self.kept_layers)):
                raise ConfigError(f"{CONFIG_KEY}.kept_layers: expected one sorted unique index in [0, "
                                  f"dense_num_layers={self.dense_num_layers}) per present layer "
                                  f"({len(self.kept_heads)}), got {self.kept_layers}"[:300])
        for name, kept, limit in (("kept_heads", self.kept_heads, self.dense_num_heads),
                                  ("kept_neurons", self.kept_neurons, self.dense_ffn_size)):
            for layer, indices in enumerate(kept):
                if sorted(set(indices)) != list(indices) or any(not 0 <= i < limit for i in indices):
                    raise ConfigError(
                        f"{CONFIG_KEY}.{name}[{layer}]: expected sorted unique indices in [0, {limit}), got {indices}"
                    )

    def check_against(self, config: PretrainedConfig) -> None:
        """The recorded dense sizes are the config's own (model type, heads, FFN width, layer count): a tampered
        size is refused here, before a model is built from it. ConfigError naming the field.

        Where compaction rewrote a config width to the one every layer kept (``dense_fields``; ``allocation:
        uniform``), the config holds the kept width instead; the recorded dense size can then only be bounded, by
        ``MAX_WIDTH_PER_HIDDEN`` times the hidden size, so that a tampered one cannot allocate gigabytes."""
        spec = get_architecture(config)
        if type(self.model_type) is not str or self.model_type != config.model_type:
            raise ConfigError(f"{CONFIG_KEY}.model_type: expected {config.model_type!r} (model_type of config.json), "
                              f"got {self.model_type!r}")
        rewritable = self.dense_fields(config)
        bound = MAX_WIDTH_PER_HIDDEN * int(config.hidden_size)
        for name, field, value, kept in (("dense_num_heads", spec.num_heads_field, spec.num_heads(config),
                                          self.kept_heads),
                                         ("dense_ffn_size", spec.ffn_size_field, spec.ffn_size(config),
                                          self.kept_neurons)):
            got = getattr(self, name)
            if type(got) is int and got == value:
                continue
            uniform = {len(k) for k in kept} == {value} and field in rewritable
            if not (type(got) is int and uniform and value <= got <= bound):
                also = f" or, as every layer keeps {value}, an integer in [{value}, {bound}]" if uniform else ""
                raise ConfigError(f"{CONFIG_KEY}.{name}: expected {value!r} ({field} of config.json){also}, "
                                  f"got {got!r}")
        kv = self.dense_num_kv_heads
        divides = type(kv) is int and 1 <= kv <= self.dense_num_heads and self.dense_num_heads % kv == 0
        if kv is not None and not divides:
            raise ConfigError(f"{CONFIG_KEY}.dense_num_kv_heads: expected a divisor of dense_num_heads "
                              f"({self.dense_num_heads}), got {kv!r}")
        layers = int(config.num_hidden_layers)
        for name in ("kept_heads", "kept_neurons"):
            if len(getattr(self, name)) != layers:
                raise ConfigError(f"{CONFIG_KEY}.{name}: expected one list per layer ({layers}, num_hidden_layers "
                                  f"of config.json), got {len(getattr(self, name))}")

    def dense_fields(self, config: PretrainedConfig) -> dict[str, int]:
        """The config fields that describe the dense widths (compaction may rewrite them to the pruned ones)."""
        spec = get_architecture(config)
        fields = {spec.ffn_size_field: self.dense_ffn_size}
        if spec.head_dim_field is not None:
            fields[spec.num_heads_field] = self.dense_num_heads
            if spec.num_kv_heads_field and self.dense_num_kv_heads is not None:
                fields[spec.num_kv_heads_field] = self.dense_num_kv_heads
        return fields

    def attach(self, model: PreTrainedModel) -> None:
        """Record the structure on the model's own config.

        transformers 5 hands the same config object to every model built by ``from_config(cfg)`` (a teacher and
        its student, say). The structure belongs to this model only, so the model first gets a private copy of
        that config (its submodules holding the same object get it too): a sibling never sees, prunes to or saves
        another model's structure, and the caller's ``cfg`` is left as it was."""
        shared = model.config
        own = copy.deepcopy(shared)
        for module in model.modules():
            if getattr(module, "config", None) is shared:
                module.config = own
        setattr(own, CONFIG_KEY, self.to_dict())

    def plain_loadable(self, config: PretrainedConfig) -> bool:
        """Every layer has the widths ``config`` states, so plain ``from_pretrained`` builds the pruned shapes
        (``allocation: uniform``, or FFN-only pruning that left the same width everywhere; head counts only where the
        config has an explicit ``head_dim``, else the per-head size would change)."""
        spec = get_architecture(config)
        heads, ffn = spec.num_heads(config), spec.ffn_size(config)
        return (all(len(k) == heads for k in self.kept_heads) and all(len(k) == ffn for k in self.kept_neurons)
                and (spec.head_dim_field is not None or heads == self.dense_num_heads))

    @property
    def is_dense(self) -> bool:
        return self.kept_layers is None and all(len(k) == self.dense_num_heads for k in self.kept_heads) and all(
            len(k) == self.dense_ffn_size for k in self.kept_neurons
        )
