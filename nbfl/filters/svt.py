"""Sparse vector technique on an update (Shokri & Shmatikov, 2015; Lyu et al., 2017).

Release at most ``fraction`` of the coordinates, chosen privately, with Laplace noise:
the update is clipped to ``[-gamma, gamma]`` (sensitivity ``2 * gamma`` per coordinate),
the budget ``epsilon`` is split in half between choosing and releasing, and in a random
order a coordinate is chosen while ``|d_i| + Lap(4 c gamma / eps_1) >= tau + Lap(2 gamma / eps_1)``
(a noisy threshold drawn once), until ``c`` are chosen; each chosen one is sent as
``d_i + Lap(2 c gamma / eps_2)``, every other as zero. As NVIDIA FLARE's SVTPrivacy,
this is one round's ``epsilon``-DP release of this update's coordinates.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..protocol.names import DataKind
from .base import FilterContext, Weights, as_diff, register


@register
class SVTPrivacy:
    name = "svt"

    def __init__(
        self,
        fraction: float = 0.1,
        epsilon: float = 0.1,
        gamma: float = 1e-5,
        tau: float = 1e-6,
        seed: int | None = None,
    ):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if not (epsilon > 0 and gamma > 0 and tau >= 0):
            raise ValueError("epsilon and gamma must be positive and tau not negative")
        self.fraction, self.epsilon, self.gamma, self.tau = float(fraction), float(epsilon), float(gamma), float(tau)
        self.rng = np.random.default_rng(seed)

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        diff = as_diff(tensors, kind, ctx.reference)
        floats = [name for name, d in diff.items() if d.dtype.kind == "f"]
        if not floats:
            return diff, DataKind.WEIGHT_DIFF
        flat = np.clip(np.concatenate([diff[n].ravel().astype(np.float64) for n in floats]), -self.gamma, self.gamma)
        chosen = max(1, int(self.fraction * flat.size))
        eps1 = eps2 = self.epsilon / 2
        sensitivity = 2 * self.gamma
        threshold = self.tau + self.rng.laplace(0, sensitivity / eps1)
        order = self.rng.permutation(flat.size)
        passes = np.abs(flat[order]) + self.rng.laplace(0, 2 * chosen * sensitivity / eps1, flat.size) >= threshold
        picked = order[passes][:chosen]
        released = np.zeros_like(flat)
        released[picked] = flat[picked] + self.rng.laplace(0, chosen * sensitivity / eps2, picked.size)
        start = 0
        for name in floats:
            d = diff[name]
            d[...] = released[start : start + d.size].reshape(d.shape)
            start += d.size
        return diff, DataKind.WEIGHT_DIFF

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fraction": self.fraction,
            "epsilon": self.epsilon,
            "gamma": self.gamma,
            "tau": self.tau,
        }
