"""Measured latency tables: what an attention block with k heads and an FFN block with n neurons cost on this device.

The table is measured once per setting (device, threads, dtype, torch version, model shapes, batch size, sequence
length) on copies of the model itself, compacted by the engine to the widths being timed, so every architecture the
engine prunes is timed with its own modules and its own attention implementation:

- the **floor**: the whole model with every attention and FFN block emptied (embeddings, norms, residual adds, the
  head, the blocks' output biases and per-op dispatch: what width pruning cannot remove);
- the **layer floor**: the floor's share of one layer (its norms, residual adds, output biases, dispatch), the floor
  minus the emptied model cut to one layer (``hfprune.pruning.layers.remove_layers``), divided by the other layers:
  what removing a whole layer saves beyond its two blocks;
- **attention(k)**: (whole model with k heads in every layer and no FFN neuron) minus the floor, divided by the
  layers;
- **ffn(n)**: (whole model with 0 heads and n neurons in every layer) minus the floor, divided by the layers, so
  ffn(0) = 0 and ffn(1) holds what a block costs beyond its neurons (the fixed cost that emptying it saves).

A model's predicted latency is floor + sum over layers of attention(k_l) + ffn(n_l), interpolated linearly between
measured widths, less one layer floor for each layer removed (a model with fewer layers than the table's: a removed
layer costs nothing of its blocks, its norms or its residual adds); this assumes blocks and layers cost the same in
every layer and add up. Each width is timed interleaved with
the dense model (``hfprune.utils.timing.interleaved_timings``) and recorded as its median per-round ratio to it times
the dense median, so machine noise hits both alike. Two corrections, both recorded: each block's costs are fitted
non-decreasing in width (isotonic regression, scikit-learn), because a noisy dip (a wider block timed faster) would
otherwise be exploited by the width search; and the block costs are scaled so that the dense model's prediction
equals its measured latency (``additivity`` keeps the uncorrected ratio, predicted / measured dense), so a
speedup target is relative to the dense model as measured. Heads are the engine's units with ``head_granularity: group``
(key/value groups for grouped-query attention, heads elsewhere).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from hfprune.errors import ConfigError, HfpruneError
from hfprune.pruning.compaction import compact
from hfprune.pruning.layers import remove_layers
from hfprune.pruning.units import UnitKind, unit_groups
from hfprune.utils.logging import get_logger

logger = get_logger(__name__)

TABLE_FORMAT = 4  # part of the cache key: a table measured by older code is not reused
# formats 2 (floor with 1 FFN neuron, neuron_steps from 1) and 3 (no layer floor) still read: a saved model's or a
# checkpoint's table; the width search never takes an FFN block below a table's first measured width, and without a
# layer floor a removed layer is predicted to save its blocks only (slower than it runs, never faster)
READABLE_FORMATS = (2, 3, TABLE_FORMAT)
TABLE_FILE_NAME = "latency_table.json"
Timer = Callable[[dict[str, torch.nn.Module], dict[str, torch.Tensor], int], dict[str, list[float]]]
"""``interleaved_timings``' signature: models, inputs, rounds -> seconds per model and round."""


@dataclass(frozen=True)
class LatencyTable:
    """Per-layer block latencies (milliseconds) at measured widths, and the fixed floor, for one setting."""

    setting: dict[str, Any]
    """What the numbers hold for: device, threads, dtype, torch version, model shapes, batch size, seq length."""
    layers: int
    head_steps: list[int]
    attention_ms: list[float]
    neuron_steps: list[int]
    ffn_ms: list[float]
    floor_ms: float
    dense_ms: float
    """The dense model, timed whole (to check that blocks add up: compare with ``dense_predicted_ms``)."""
    rounds: int = 0
    additivity: float = 1.0
    """Before scaling: the blocks' predicted dense latency over the measured one (1 = blocks add up exactly)."""
    raw_attention_ms: list[float] = field(default_factory=list)
    raw_ffn_ms: list[float] = field(default_factory=list)
    """The block costs as timed, before the monotone fit and the scaling."""
    format: int = field(default=TABLE_FORMAT)
    layer_floor_ms: float = 0.0
    """The floor's share of one layer: what a removed layer saves beyond its blocks (0 before format 4)."""

    def attention(self, heads: int) -> float:
        """One layer's attention block with ``heads`` units, interpolated between measured widths."""
        return float(np.interp(heads, self.head_steps, self.attention_ms))

    def ffn(self, neurons: int) -> float:
        """One layer's FFN block with ``neurons`` neurons beyond the floor's one, interpolated."""
        return float(np.interp(neurons, self.neuron_steps, self.ffn_ms))

    def narrowest(self, kind: UnitKind) -> int:
        """The narrowest width the table measured for ``kind``'s blocks (0, an emptied block, from format 3 on)."""
        return (self.head_steps if kind is UnitKind.HEADS else self.neuron_steps)[0]

    def predict(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        """Predicted forward latency of a model with these per-layer widths; fewer layers than the table's are a model
        with whole layers removed, each saving its blocks and one layer floor."""
        if len(heads) != len(neurons) or not 1 <= len(heads) <= self.layers:
            raise HfpruneError(f"latency table: expected widths of 1 to {self.layers} layers, as many head as FFN "
                               f"widths, got {len(heads)} head and {len(neurons)} FFN widths")
        removed = self.layers - len(heads)
        return (self.floor_ms - removed * self.layer_floor_ms + sum(self.attention(h) for h in heads)
                + sum(self.ffn(n) for n in neurons))

    @property
    def dense_predicted_ms(self) -> float:
        return self.predict([self.head_steps[-1]] * self.layers, [self.neuron_steps[-1]] * self.layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any], source: str = "latency table") -> LatencyTable:
        """Rebuild a table; a malformed one is a one-line error naming ``source``."""
        try:
            table = cls(setting=dict(payload["setting"]), layers=int(payload["layers"]),
                        head_steps=[int(x) for x in payload["head_steps"]],
                        attention_ms=[float(x) for x in payload["attention_ms"]],
                        neuron_steps=[int(x) for x in payload["neuron_steps"]],
                        ffn_ms=[float(x) for x in payload["ffn_ms"]], floor_ms=float(payload["floor_ms"]),
                        dense_ms=float(payload["dense_ms"]), rounds=int(payload.get("rounds", 0)),
                        additivity=float(payload.get("additivity", 1.0)),
                        raw_attention_ms=[float(x) for x in payload.get("raw_attention_ms", [])],
                        raw_ffn_ms=[float(x) for x in payload.get("raw_ffn_ms", [])],
                        format=int(payload.get("format", TABLE_FORMAT)),
                        layer_floor_ms=float(payload.get("layer_floor_ms", 0.0)))
        except (KeyError, TypeError, ValueError) as error:
            raise HfpruneError(f"{source}: not a latency table ({type(error).__name__}: {error})") from None
        if table.format not in READABLE_FORMATS:
            raise HfpruneError(f"{source}: expected latency table format {' or '.join(map(str, READABLE_FORMATS))}, "
                               f"got {table.format}")
        for name, steps, values in (("head_steps", table.head_steps, table.attention_ms),
                                    ("neuron_steps", table.neuron_steps, table.ffn_ms)):
            if not steps or len(steps) != len(values) or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
                raise HfpruneError(f"{source}: {name} must be increasing and as long as its latencies")
        return table

    def save(self, path: str | os.PathLike) -> Path:
        from hfprune.utils.io import atomic_write_json

        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise HfpruneError(f"{path}: cannot read a latency table ({type(error).__name__}: {error})") from None
        return cls.from_dict(payload, str(path))


def device_name() -> str:
    """The CPU model (what the timings depend on), as precise as the platform tells."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"cpu: {platform.machine()} {platform.processor()}".strip()


def model_shapes(model: PreTrainedModel) -> dict[str, Any]:
    """The shapes a table depends on; every layer must have the same widths (a dense model)."""
    heads = {g.num_units for g in unit_groups(model, UnitKind.HEADS, "group")}
    neurons = {g.num_units for g in unit_groups(model, UnitKind.NEURONS)}
    if len(heads) != 1 or len(neurons) != 1:
        raise HfpruneError(f"latency table: expected a model whose layers all have the same widths (a dense model), "
                           f"got head units {sorted(heads)} and FFN widths {sorted(neurons)}")
    config = model.config
    return {"class": type(model).__name__, "model_type": config.model_type, "layers": int(config.num_hidden_layers),
            "head_units": heads.pop(), "ffn_size": neurons.pop(),
            "hidden_size": int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or
                               getattr(config, "dim", 0)),
            "vocab_size": int(getattr(config, "vocab_size", 0))}


def table_setting(model: PreTrainedModel, batch_size: int, seq_len: int, threads: int) -> dict[str, Any]:
    """The cache key's fields for timing ``model`` at this batch size, sequence length and thread count."""
    return {"format": TABLE_FORMAT, "device": device_name(), "threads": threads,
            "dtype": str(next(model.parameters()).dtype), "torch": torch.__version__, "shapes": model_shapes(model),
            "batch_size": batch_size, "seq_len": seq_len}


def cache_path(setting: dict[str, Any]) -> Path:
    """Where the table of ``setting`` is cached: ``<hfprune cache dir>/latency_tables/<sha256 of the setting>.json``."""
    from hfprune.data.paths import cache_dir

    digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    return cache_dir() / "latency_tables" / f"{digest}.json"


def default_steps(units: int, count: int) -> list[int]:
    """About ``count`` widths from 1 to ``units`` (every width when there are fewer), always both ends (width 0, the
    emptied block, is the floor's and is added by ``measure_table``)."""
    if units <= count:
        return list(range(1, units + 1))
    return sorted({1, units, *(round(units * i / (count - 1)) for i in range(1, count - 1))})


def latency_table(model: PreTrainedModel, batch_size: int = 1, seq_len: int = 128, threads: int = 1,
                  rounds: int = 10, timer: Timer | None = None, use_cache: bool = True) -> LatencyTable:
    """The cached table of ``model``'s setting, measured now (and cached, atomically) when there is none."""
    setting = table_setting(model, batch_size, seq_len, threads)
    path = cache_path(setting)
    if use_cache and path.is_file():
        try:
            table = LatencyTable.load(path)
        except HfpruneError as error:  # hfprune's own cache: a damaged entry is measured again, not fatal
            logger.warning("%s; measuring the table again", error)
        else:
            if table.setting == setting:
                logger.info("latency table read from %s", path)
                return table
    table = measure_table(model, batch_size, seq_len, threads, rounds, timer)
    if use_cache:
        table.save(path)
        logger.info("latency table cached at %s", path)
    return table


def measure_table(model: PreTrainedModel, batch_size: int = 1, seq_len: int = 128, threads: int = 1,
                  rounds: int = 10, timer: Timer | None = None, head_steps: Sequence[int] | None = None,
                  neuron_steps: Sequence[int] | None = None) -> LatencyTable:
    """Time ``model`` compacted to each width (see the module docstring) on copies, in this process's device
    (CPU) with ``threads`` threads; ``timer`` (default ``interleaved_timings``) is injectable for tests."""
    from hfprune.pruning.latency import random_token_batch
    from hfprune.utils.timing import interleaved_timings

    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("threads", threads), ("rounds", rounds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"latency table: {name}: expected an integer >= 1, got {value!r}")
    timer = timer or interleaved_timings
    setting = table_setting(model, batch_size, seq_len, threads)
    shapes = setting["shapes"]
    layers, heads, ffn = shapes["layers"], shapes["head_units"], shapes["ffn_size"]
    head_steps = sorted({0, *(head_steps or default_steps(heads, 16))})
    neuron_steps = sorted({0, *(neuron_steps or default_steps(ffn, 12))})
    dense = copy.deepcopy(model).to("cpu").eval()
    for module in dense.modules():  # a copy of a masked model would carry the masks: time the weights alone
        module._forward_pre_hooks.clear()
        module._forward_hooks.clear()
    inputs = random_token_batch([dense], batch_size, seq_len)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dense_runs: list[float] = []

        def time_widths(k: int, n: int, one_layer: bool = False) -> float:
            if (k, n) == (heads, ffn):
                variant = dense
            else:
                variant = copy.deepcopy(dense)
                compact(variant, {UnitKind.HEADS: [_first(k, heads)] * layers,
                                  UnitKind.NEURONS: [_first(n, ffn)] * layers})
            if one_layer:
                remove_layers(variant, [0])
            times = timer({"dense": dense, "variant": variant}, inputs, rounds)
            dense_runs.extend(times["dense"])
            return statistics.median(v / d for v, d in zip(times["variant"], times["dense"], strict=True))

        floor_ratio = time_widths(0, 0)
        # clipped at 0: a noisy negative share would make removing a layer look slower than keeping it emptied
        layer_floor = max(0.0, (floor_ratio - time_widths(0, 0, one_layer=True)) / (layers - 1)) if layers > 1 else 0.0
        attention = [(time_widths(k, 0) - floor_ratio) / layers if k else 0.0 for k in head_steps]
        ffn_costs = [(time_widths(0, n) - floor_ratio) / layers if n else 0.0 for n in neuron_steps]
        dense_ms = 1000 * statistics.median(dense_runs)
    finally:
        torch.set_num_threads(previous_threads)
    raw_attention = [a * dense_ms for a in attention]
    raw_ffn = [f * dense_ms for f in ffn_costs]
    fitted_attention, fitted_ffn = _monotone(head_steps, raw_attention), _monotone(neuron_steps, raw_ffn)
    floor_ms = floor_ratio * dense_ms
    blocks = layers * (fitted_attention[-1] + fitted_ffn[-1])
    scale = (dense_ms - floor_ms) / blocks if blocks > 0 and dense_ms > floor_ms else 1.0
    table = LatencyTable(setting=setting, layers=layers, head_steps=head_steps,
                         attention_ms=[a * scale for a in fitted_attention], neuron_steps=neuron_steps,
                         ffn_ms=[f * scale for f in fitted_ffn], floor_ms=floor_ms, dense_ms=dense_ms,
                         rounds=rounds, additivity=(floor_ms + blocks) / dense_ms, raw_attention_ms=raw_attention,
                         raw_ffn_ms=raw_ffn, layer_floor_ms=layer_floor * dense_ms)
    logger.info("latency table: dense %.2f ms, floor %.2f ms (%.2f ms a layer); blocks predicted %.3f of the dense "
                "time (scaled to 1)", table.dense_ms, table.floor_ms, table.layer_floor_ms, table.additivity)
    return table


def _monotone(steps: list[int], costs: list[float]) -> list[float]:
    """The least-squares non-decreasing fit of ``costs`` over ``steps`` (a width never costs less than a smaller
    one; dips are timing noise), keeping the first (zero-cost) width at zero."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(increasing=True, y_min=0.0).fit_transform(steps, costs)
    return [0.0, *(float(x) for x in fitted[1:])]


def _first(kept: int, total: int) -> torch.Tensor:
    mask = torch.zeros(total)
    mask[:kept] = 1
    return mask
