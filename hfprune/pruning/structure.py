"""``PrunedStructure``: which heads and FFN neurons each layer kept, in the dense model's numbering.

It rides in ``config.json`` (as ``config.hfprune_structure``), so a plain ``model.save_pretrained`` of a compacted
model records everything ``load_pruned`` needs to rebuild the exact shapes, and ``export_dense`` needs to put every
weight back where it came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from transformers import PretrainedConfig, PreTrainedModel

from hfprune.errors import ConfigError
from hfprune.pruning.architectures import get_architecture

CONFIG_KEY = "hfprune_structure"


@dataclass
class PrunedStructure:
    model_type: str
    dense_num_heads: int
    dense_ffn_size: int
    kept_heads: list[list[int]]
    kept_neurons: list[list[int]]

    @classmethod
    def dense(cls, model: PreTrainedModel) -> PrunedStructure:
        spec = get_architecture(model)
        heads, ffn = spec.num_heads(model.config), spec.ffn_size(model.config)
        layers = int(model.config.num_hidden_layers)
        return cls(model.config.model_type, heads, ffn, [list(range(heads))] * layers, [list(range(ffn))] * layers)

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
        for name, kept, limit in (("kept_heads", self.kept_heads, self.dense_num_heads),
                                  ("kept_neurons", self.kept_neurons, self.dense_ffn_size)):
            for layer, indices in enumerate(kept):
                if sorted(set(indices)) != list(indices) or any(not 0 <= i < limit for i in indices):
                    raise ConfigError(
                        f"{CONFIG_KEY}.{name}[{layer}]: expected sorted unique indices in [0, {limit}), got {indices}"
                    )

    def check_against(self, config: PretrainedConfig) -> None:
        """The recorded dense sizes are the config's own (model type, heads, FFN width, layer count): a tampered
        size is refused here, before a model is built from it. ConfigError naming the field."""
        spec = get_architecture(config)
        expected = {"model_type": (config.model_type, "model_type"),
                    "dense_num_heads": (spec.num_heads(config), spec.num_heads_field),
                    "dense_ffn_size": (spec.ffn_size(config), spec.ffn_size_field)}
        for name, (value, source) in expected.items():
            got = getattr(self, name)
            if type(got) is not type(value) or got != value:
                raise ConfigError(f"{CONFIG_KEY}.{name}: expected {value!r} ({source} of config.json), got {got!r}")
        layers = int(config.num_hidden_layers)
        for name in ("kept_heads", "kept_neurons"):
            if len(getattr(self, name)) != layers:
                raise ConfigError(f"{CONFIG_KEY}.{name}: expected one list per layer ({layers}, num_hidden_layers "
                                  f"of config.json), got {len(getattr(self, name))}")

    def attach(self, model: PreTrainedModel) -> None:
        setattr(model.config, CONFIG_KEY, self.to_dict())

    @property
    def is_dense(self) -> bool:
        return all(len(k) == self.dense_num_heads for k in self.kept_heads) and all(
            len(k) == self.dense_ffn_size for k in self.kept_neurons
        )
