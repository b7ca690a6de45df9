"""Federated statistics, the client's half: what one site computes on its own data.

The controller's half (:mod:`nbfl.workflows.stats`) asks twice, and
:func:`local_statistics` answers according to ``meta["pass"]``:

1. count, sum, min and max per feature, from which the controller gets the global
   mean and range;
2. given the global ``mean`` and shared histogram ``edges``, the sum of squared
   deviations from that mean and the histogram counts over those edges.

Only these aggregates leave the site, and only when the site has at least a minimum
number of samples: the larger of the site's own policy and the controller's request,
so a controller can raise the bar but never lower it. Below it the site sends no
tensors and says why. The local data is a finite ``(samples, features)`` matrix:
missing values are the site's to impute or drop first.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..protocol import names
from ..protocol.names import DataKind
from ..protocol.weights import Weights
from .tasks import TaskContext, Update


def local_statistics(
    x: np.ndarray, request: Mapping[str, np.ndarray], meta: Mapping[str, Any], min_count: int = 0
) -> tuple[Weights, dict[str, Any]]:
    """This site's answer to one pass of the ``statistics`` task: ``(tensors, meta)``.

    ``request`` is what the controller sent (nothing in pass 1; ``mean`` and ``edges``
    in pass 2); ``min_count`` is the site's own policy. A withheld answer has no
    tensors and meta ``{"withheld": reason, "num_samples": n, "min_count": threshold}``.
    A malformed request raises ValueError, which reaches the controller as this
    client's error.
    """
    x = _as_matrix(x)
    step = meta.get(names.STATS_PASS)
    if step not in (1, 2):
        raise ValueError(f"meta['pass'] must be 1 or 2, not {step!r}")
    # a site with no samples has nothing to tell, whatever the policies say
    threshold = max(1, min_count, _requested_min_count(meta))
    samples = x.shape[0]
    if samples < threshold:
        return {}, {
            names.WITHHELD: withheld_reason(samples, threshold),
            "num_samples": samples,
            names.MIN_COUNT: threshold,
        }
    if step == 1:
        count = np.full(x.shape[1], float(samples))
        return {"count": count, "sum": x.sum(axis=0), "min": x.min(axis=0), "max": x.max(axis=0)}, {}
    mean, edges = _second_pass_request(request, x.shape[1])
    histogram = np.stack([np.histogram(column, bins=row)[0] for column, row in zip(x.T, edges)])
    return {"sum_sq_dev": ((x - mean) ** 2).sum(axis=0), "histogram": histogram.astype(np.int64)}, {}


def withheld_reason(samples: int, threshold: int) -> str:
    """The one sentence both halves use for a withheld answer."""
    return f"{samples} samples, fewer than the minimum count of {threshold}"


def statistics_task(x: np.ndarray, min_count: int = 0) -> Callable[[Mapping[str, np.ndarray], TaskContext], Update]:
    """A task function over local data ``x``: ``Client(..., tasks={"statistics": statistics_task(x)})``."""
    x = _as_matrix(x)

    def statistics(tensors: Mapping[str, np.ndarray], ctx: TaskContext) -> Update:
        answer, meta = local_statistics(x, tensors, ctx.meta, min_count)
        return Update(answer, DataKind.STATISTICS, meta=meta)

    return statistics


def _as_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"local data must be a (samples, features) matrix, not shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("local data holds NaN or infinite values; impute or drop them first")
    return x


def _requested_min_count(meta: Mapping[str, Any]) -> int:
    value = meta.get(names.MIN_COUNT, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"meta['min_count'] must be a non-negative integer, not {value!r}")
    return value


def _second_pass_request(request: Mapping[str, np.ndarray], features: int) -> tuple[np.ndarray, np.ndarray]:
    """The controller's ``mean`` and ``edges``, checked against this site's data."""
    missing = [key for key in ("mean", "edges") if key not in request]
    if missing:
        raise ValueError(f"pass 2 needs the tensors mean and edges; missing: {', '.join(missing)}")
    mean = np.asarray(request["mean"], dtype=np.float64)
    edges = np.asarray(request["edges"], dtype=np.float64)
    if mean.shape != (features,):
        raise ValueError(f"mean has shape {mean.shape}; this site has {features} features, so ({features},)")
    if edges.ndim != 2 or edges.shape[0] != features or edges.shape[1] < 2:
        raise ValueError(f"edges has shape {edges.shape}; expected ({features}, bins + 1) with at least one bin")
    if not (np.isfinite(mean).all() and np.isfinite(edges).all()):
        raise ValueError("mean and edges must be finite")
    if (np.diff(edges, axis=1) < 0).any():
        raise ValueError("histogram edges must increase along each feature")
    return mean, edges
