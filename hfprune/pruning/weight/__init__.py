"""Weight-level pruning of the matrices that carry heads and FFN neurons: unstructured movement (hard top-k and soft
threshold, Sanh et al. 2020), gradual magnitude (Zhu & Gupta 2017) and the 2:4 semi-structured pattern, on the same
schedule, callback and resume path as head / FFN pruning; plus a compressed (values + bitmask) save."""

from hfprune.utils.lazy import lazy_exports

_EXPORTS = {
    "load_compressed": "hfprune.pruning.serialization",
    "save_compressed": "hfprune.pruning.serialization",
    "PrunableMatrix": "hfprune.pruning.weight.matrices",
    "prunable_matrices": "hfprune.pruning.weight.matrices",
    "WEIGHT_METHODS": "hfprune.pruning.weight.methods",
    "WeightMethod": "hfprune.pruning.weight.methods",
    "register_weight_method": "hfprune.pruning.weight.methods",
    "WeightPruner": "hfprune.pruning.weight.pruner",
    "weight_counts": "hfprune.pruning.weight.pruner",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
