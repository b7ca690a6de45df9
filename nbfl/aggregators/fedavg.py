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

from ..executor import DataKind
from ..weights import Weights, check_update


class WeightedMean:
    """Accumulates ``weight * update`` in place, in the model's own float dtype."""

    def __init__(self, global_weights: Mapping[str, np.ndarray]):
        self._global = global_weights
        self._acc = {name: np.zeros(a.shape, _acc_dtype(a.dtype)) for name, a in global_weights.items()}
        largest = max((a.size for a in global_weights.values()), default=0)
        self._scratch = {dt: np.empty(largest, dt) for dt in {a.dtype for a in self._acc.values()}}
        self.total_weight = 0.0
        self._diff_weight = 0.0
        self.count = 0

    def accept(self, update: Mapping[str, np.ndarray], weight: float, kind: str = DataKind.WEIGHTS) -> None:
        """Check ``update`` (names, shapes, dtypes, finite) and fold it in; raise if bad.

        A rejected update leaves the accumulator untouched.
        """
        if kind not in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
            raise ValueError(f"cannot average data of kind {kind!r}")
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"aggregation weight must be a positive number, got {weight!r}")
        check_update(update, self._global)
        for name, acc in self._acc.items():
            scratch = self._scratch[acc.dtype][: acc.size].reshape(acc.shape)
            np.multiply(update[name], weight, out=scratch, casting="unsafe")
            np.add(acc, scratch, out=acc)
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
            if self._diff_weight:
                scratch = self._scratch[acc.dtype][: acc.size].reshape(acc.shape)
                np.multiply(g, self._diff_weight, out=scratch, casting="unsafe")
                np.add(acc, scratch, out=acc)
            acc /= self.total_weight
            out[name] = acc if acc.dtype == g.dtype else _cast_back(acc, g.dtype)
        self._acc = {}  # the arrays now belong to the caller
        return out


def _acc_dtype(dtype: np.dtype) -> np.dtype:
    """float32/64 accumulate in their own precision, float16 in float32, integers in float64."""
    if dtype.kind == "f":
        return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    return np.dtype(np.float64)


def _cast_back(acc: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "b":
        return acc >= 0.5
    return np.rint(acc).astype(dtype) if dtype.kind in "iu" else acc.astype(dtype)
