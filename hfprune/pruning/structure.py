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
        if not recorded:
            return cls.dense(model)
        structure = cls.from_dict(recorded)
        structure.check_fits(model.config, "model.config")
        return structure

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
        for name, kept, limit in (("kept_heads", self.kept_heads, self.dense_num_heads),
                                  ("kept_neurons", self.kept_neurons, self.dense_ffn_size)):
            for layer, indices in enumerate(kept):
                if sorted(set(indices)) != list(indices) or any(not 0 <= i < limit for i in indices):
                    raise ConfigError(
                        f"{CONFIG_KEY}.{name}[{layer}]: expected sorted unique indices in [0, {limit}), got {indices}"
                    )

    def check_fits(self, config: PretrainedConfig, where: str) -> None:
        """The structure describes a model of ``config``'s type and depth (one kept list per layer), so the model
        built from ``config`` can be sliced to it; ``where`` names the checkpoint in the error."""
        if self.model_type != config.model_type:
            raise ConfigError(f"{where}: {CONFIG_KEY}.model_type: expected {config.model_type!r} (the config's "
                              f"model_type), got {self.model_type!r}")
        layers = int(config.num_hidden_layers)
        for name in ("kept_heads", "kept_neurons"):
            if len(getattr(self, name)) != layers:
                raise ConfigError(f"{where}: {CONFIG_KEY}.{name}: expected one list per layer ({layers}, the "
                                  f"config's num_hidden_layers), got {len(getattr(self, name))}")

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

    @property
    def is_dense(self) -> bool:
        return all(len(k) == self.dense_num_heads for k in self.kept_heads) and all(
            len(k) == self.dense_ffn_size for k in self.kept_neurons
        )
