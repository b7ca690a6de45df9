"""Streaming weighted mean of client updates: FedAvg's aggregation step.

Each accepted update is folded into one accumulator the moment it arrives, so memory
is O(model), not O(clients x model). WEIGHTS and WEIGHT_DIFF updates can be mixed:
a diff ``d`` stands for the weights ``g + d`` (``g`` the global model sent this
round), so the accumulator adds ``w * d`` and remembers ``w``; the global model is
added back once, at the end, with the total weight of the diffs::

    result = (sum_i w_i x_i + g * sum_{i: diff} w_i) / sum_i w_i
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..protocol.names import DataKind
from ..protocol.weights import Weights, cast_like, check_update

CHUNK = 1 << 16  # elements per step of the scaled add: 256 KiB of float32, cache-sized


class WeightedMean:
    """Accumulates ``weight * update`` in place, in the model's own float dtype.

    The accumulator holds the weighted sum divided by a running ``scale``, the largest
    weight seen so far, so every factor ever applied is at most 1 and nothing is
    multiplied up: a weight of 1e9 beside one of 1e-3 cannot overflow float32, as the
    ratio of the two would. An update whose weight equals the scale costs one in-place
    add (the common case of equal steps or samples); a larger weight first scales the
    accumulator down, a smaller one is added scaled down, chunk by chunk.
    """

    def __init__(self, global_weights: Mapping[str, np.ndarray]):
        self._global = global_weights
        self._acc: Weights = {}  # made from the first accepted update (a copy, not zeros + add)
        self._scratch = {dt: np.empty(CHUNK, dt) for dt in {_acc_dtype(a.dtype) for a in global_weights.values()}}
        self.total_weight = 0.0
        self._diff_weight = 0.0
        self._scale = 1.0
        self.count = 0

    def accept(
        self, update: Mapping[str, np.ndarray], weight: float, kind: str = DataKind.WEIGHTS, *, owned: bool = False
    ) -> None:
        """Check ``update`` (names, shapes, dtypes, finite) and fold it in; raise if bad.

        A rejected update leaves the accumulator untouched. ``owned=True`` hands the
        update's arrays over: the first one accepted becomes the accumulator in place
        (for a result off the wire, its receive buffer) instead of being copied.
        """
        if kind not in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
            raise ValueError(f"cannot average data of kind {kind!r}")
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"aggregation weight must be a positive number, got {weight!r}")
        check_update(update, self._global)
        if self.count == 0:
            self._acc = {name: _take(update[name], _acc_dtype(g.dtype), owned) for name, g in self._global.items()}
            self._scale = float(weight)
        elif weight < self._scale:
            for name, acc in self._acc.items():
                self._add_scaled(acc, update[name], weight / self._scale)
        else:
            shrink = self._scale / weight
            for name, acc in self._acc.items():
                if shrink != 1.0:
                    acc *= shrink
                np.add(acc, update[name], out=acc, casting="unsafe")
            self._scale = float(weight)
        self.total_weight += weight
        if kind == DataKind.WEIGHT_DIFF:
            self._diff_weight += weight
        self.count += 1

    def result(self) -> Weights:
        """The weighted mean as full weights in the model's dtypes (new arrays)."""
        if self.count == 0:
            raise ValueError("no update was accepted")
        out: Weights = {}
        for name, acc in self._acc.items():
            g = self._global[name]
            acc *= self._scale / self.total_weight
            if self._diff_weight:
                self._add_scaled(acc, g, self._diff_weight / self.total_weight)
            out[name] = acc if acc.dtype == g.dtype else cast_like(acc, g.dtype)
        self._acc = {}  # the arrays now belong to the caller
        return out

    def _add_scaled(self, acc: np.ndarray, x: np.ndarray, weight: float) -> None:
        """``acc += weight * x`` in place, through a small scratch buffer that stays in cache."""
        flat_acc, flat_x = acc.reshape(-1), x.reshape(-1)
        scratch = self._scratch[acc.dtype]
        for start in range(0, flat_acc.size, CHUNK):
            a = flat_acc[start : start + CHUNK]
            tmp = scratch[: a.size]
            np.multiply(flat_x[start : start + CHUNK], weight, out=tmp, casting="unsafe")
            np.add(a, tmp, out=a)


def _take(arr: np.ndarray, dtype: np.dtype, owned: bool) -> np.ndarray:
    """``arr`` itself when it may serve as an accumulator, else a copy in ``dtype``."""
    if owned and arr.dtype == dtype and arr.flags.writeable and arr.flags.c_contiguous:
        return arr
    return arr.astype(dtype)


def _acc_dtype(dtype: np.dtype) -> np.dtype:
    """float32/64 accumulate in their own precision, float16 in float32, integers in float64."""
    if dtype.kind == "f":
        return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    return np.dtype(np.float64)
