"""Share only the largest coordinates of an update, clipped (Shokri & Shmatikov, 2015).

As NVIDIA FLARE's PercentilePrivacy: coordinates whose absolute update is below the
``percentile``-th percentile of all absolute updates are sent as zero; the rest are
clipped to ``[-gamma, gamma]``. Less of each update leaves the site; this is a
heuristic that limits what is shared, not a differential-privacy guarantee.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..protocol.names import DataKind
from .base import FilterContext, Weights, as_diff, register


@register
class PercentilePrivacy:
    name = "percentile"

    def __init__(self, percentile: float = 10.0, gamma: float = 0.01):
        if not 0 <= percentile < 100:
            raise ValueError(f"percentile must be in [0, 100), got {percentile}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        self.percentile, self.gamma = float(percentile), float(gamma)

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        diff = as_diff(tensors, kind, ctx.reference)
        floats = [d for d in diff.values() if d.dtype.kind == "f"]
        if floats:
            cutoff = np.percentile(np.abs(np.concatenate([d.ravel() for d in floats])), self.percentile)
            for d in floats:
                small = np.abs(d) < cutoff
                np.clip(d, -self.gamma, self.gamma, out=d)
                d[small] = 0
        return diff, DataKind.WEIGHT_DIFF

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "percentile": self.percentile, "gamma": self.gamma}
