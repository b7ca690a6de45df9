"""Gaussian mechanism on a client's update: clip its L2 norm, add calibrated noise.

This is DP-FedAvg's client step (McMahan et al., 2018): the update ``d`` (the trained
model minus the model the task carried) is scaled to norm at most ``clip``, then every
coordinate gets ``N(0, (noise_multiplier * clip)^2)``. Whatever the site's data, one
round's release is then ``(alpha, alpha / (2 z^2))``-RDP for the whole site's dataset;
:mod:`nbfl.filters.accountant` composes the rounds into the (epsilon, delta) shown in
the dashboard and history.

Only the noisy update leaves: the filter also drops the result's metrics and its
sample and step counts, which would otherwise tell the controller about the data
(FedAvg then weights the sites equally, as DP-FedAvg does).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..protocol.names import DataKind
from .base import FilterContext, Weights, as_diff, register

PRIVATE_META = ("metrics", "num_samples", "NUM_STEPS_CURRENT_ROUND")


@register
class GaussianPrivacy:
    name = "dp"

    def __init__(self, clip: float = 1.0, noise_multiplier: float = 1.0, seed: int | None = None):
        if not clip > 0:
            raise ValueError(f"clip must be positive, got {clip}")
        if not noise_multiplier >= 0:
            raise ValueError(f"noise_multiplier must not be negative, got {noise_multiplier}")
        self.clip, self.noise_multiplier = float(clip), float(noise_multiplier)
        self.rng = np.random.default_rng(seed)  # OS entropy unless a test fixes it

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        diff = as_diff(tensors, kind, ctx.reference)
        floats = [d for d in diff.values() if d.dtype.kind == "f"]
        norm = float(np.sqrt(sum(np.dot(d.ravel().astype(np.float64), d.ravel()) for d in floats)))
        scale = min(1.0, self.clip / norm) if norm > 0 else 1.0
        sigma = self.noise_multiplier * self.clip
        for d in floats:
            d *= scale
            if sigma:
                d += self.rng.normal(0.0, sigma, d.shape).astype(d.dtype, copy=False)
        for key in PRIVATE_META:
            ctx.meta.pop(key, None)
        return diff, DataKind.WEIGHT_DIFF

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "clip": self.clip, "noise_multiplier": self.noise_multiplier}
