"""``PruneClassifierConfig``'s latency target: its fields reach the PruningConfig, clashes name this config's field."""

from __future__ import annotations

import pytest

from hfprune.errors import ConfigError
from hfprune.pipeline.prune_classifier import PruneClassifierConfig


def test_latency_fields_reach_the_pruning_config():
    config = PruneClassifierConfig(head_sparsity=0.0, ffn_sparsity=0.0, latency_target=2.0, latency_batch_size=4,
                                   latency_seq_len=64, latency_threads=2, min_heads_per_layer=0,
                                   min_neurons_per_layer=0)
    pruning = config.pruning_config()
    assert (pruning.latency_target, pruning.latency_batch_size, pruning.latency_seq_len, pruning.latency_threads,
            pruning.min_heads_per_layer, pruning.min_neurons_per_layer) == (2.0, 4, 64, 2, 0, 0)
    assert config.recipe().pruning.latency_target == 2.0
    default = PruneClassifierConfig().pruning_config()  # no target: the sparsity run of before, same fingerprint
    assert (default.latency_target, default.min_heads_per_layer, default.min_neurons_per_layer) == (0.0, 1, 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"latency_target": 2.0}, r"^PruneClassifierConfig\.head_sparsity sets PruningConfig\.head_sparsity: with "
                              r"latency_target set, expected 0"),
    ({"head_sparsity": 0.0, "ffn_sparsity": 0.0, "latency_target": 0.5},
     r"^PruneClassifierConfig\.latency_target sets PruningConfig\.latency_target: expected a speedup > 1"),
    ({"latency_threads": 0}, r"^PruneClassifierConfig\.latency_threads sets PruningConfig\.latency_threads"),
])
def test_bad_latency_settings_are_one_line_errors_naming_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        PruneClassifierConfig(**kwargs)
    assert "\n" not in str(error.value)
