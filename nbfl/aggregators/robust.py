"""Robust aggregation: combine client models so a few bad ones cannot steer the result.

A weighted mean follows any single client as far as it likes: one client sending its
weights times 1e6 moves the mean by ~1e6 / N. These rules bound that influence:

* **median**: coordinate-wise median (Yin et al., 2018);
* **trimmed mean**: per coordinate, drop the ``k = floor(beta * n)`` largest and
  smallest values and average the rest (Yin et al., 2018);
* **Krum / multi-Krum** (Blanchard et al., 2017): score each model by the summed
  squared distance to its ``n - f - 2`` nearest others and keep the ``m`` best scored
  (their mean); ``f`` is how many attackers to withstand, and needs ``n > 2f + 2``.

Unlike FedAvg's streaming mean they need every model at once: O(clients x model) memory.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..protocol.weights import Weights, cast_like


def _stacked(models: Sequence[Weights], name: str) -> np.ndarray:
    return np.stack([np.asarray(m[name], np.float64) for m in models])


def median(models: Sequence[Weights]) -> Weights:
    _need(models, 1)
    return {name: cast_like(np.median(_stacked(models, name), axis=0), ref.dtype) for name, ref in models[0].items()}


def trimmed_mean(models: Sequence[Weights], beta: float = 0.2) -> Weights:
    """Drop ``floor(beta * n)`` values at each end of every coordinate, then average."""
    if not 0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    _need(models, 1)
    k = int(beta * len(models))
    out = {}
    for name, ref in models[0].items():
        ordered = np.sort(_stacked(models, name), axis=0)
        out[name] = cast_like(ordered[k : len(models) - k].mean(axis=0), ref.dtype)
    return out


def krum_scores(models: Sequence[Weights], f: int) -> np.ndarray:
    """Each model's summed squared distance to its ``n - f - 2`` nearest neighbours."""
    n = len(models)
    if n <= 2 * f + 2:
        raise ValueError(f"Krum with f={f} needs more than {2 * f + 2} models, got {n}")
    names = list(models[0])
    flat = np.stack([np.concatenate([np.asarray(m[k], np.float64).ravel() for k in names]) for m in models])
    sq = (flat * flat).sum(1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    np.fill_diagonal(dist, np.inf)
    return np.sort(dist, axis=1)[:, : n - f - 2].sum(1)


def krum(models: Sequence[Weights], f: int = 1, m: int = 1) -> Weights:
    """The mean of the ``m`` best-scored models (``m=1``: Krum; more: multi-Krum)."""
    if not 1 <= m <= len(models):
        raise ValueError(f"m must be between 1 and {len(models)}, got {m}")
    chosen = [models[i] for i in np.argsort(krum_scores(models, f), kind="stable")[:m]]
    return {name: cast_like(_stacked(chosen, name).mean(axis=0), ref.dtype) for name, ref in models[0].items()}


def _need(models: Sequence[Weights], n: int) -> None:
    if len(models) < n:
        raise ValueError(f"need at least {n} model(s), got {len(models)}")
