"""Federated statistics: count, mean, std and histograms per feature, without the data.

Two passes over the clients, because one pass cannot give two of these exactly:

1. every client sends its count, sum, min and max per feature (see
   :func:`nbfl.participant.statistics.local_statistics`). Added up they give the global count and
   mean, and the global range, from which the controller draws equal-width histogram
   edges, the same for everybody.
2. the same clients get that global mean and those edges, and send the sum of squared
   deviations from the mean and their histogram counts over the edges.

Deviations from the *global* mean add up to the pooled sum of squares, so the variance
is the two-step one numpy computes on the pooled data, free of the cancellation of a
one-pass ``sum(x**2) - n * mean**2``; and histograms over shared edges add up bin by
bin, which histograms over each client's own range could not.

A client with fewer samples than the minimum count (ours or its own, whichever is
larger) sends no tensors: it is listed under ``withheld``, with its reason. A
malformed answer is rejected and the client told why. The model is neither sent nor
changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..protocol import names
from ..protocol.names import FIRST_PASS
from ..protocol.weights import Weights
from .base import RoundFailed

if TYPE_CHECKING:
    from ..protocol.records import ClientInfo, Result
    from .base import RoundContext


class FederatedStatistics:
    """Per-feature count, mean, std (population, like ``np.std``), variance, min, max and
    histogram over the data of all clients that answer ``task_name``.

    After a round, :attr:`result` holds numpy arrays indexed by feature (``histogram``
    and ``edges`` one row per feature) with ``features`` (names), ``withheld``
    (``{client: reason}``) and ``clients`` (the names whose data is counted); the
    round's record holds the same under ``"statistics"`` as plain lists.
    """

    name = "statistics"
    trains = False

    def __init__(
        self, task_name: str = names.STATISTICS, bins: int = 10, min_count: int = 10, features: list[str] | None = None
    ):
        if bins < 1:
            raise ValueError(f"bins must be at least 1, not {bins}")
        if min_count < 0:
            raise ValueError(f"min_count must not be negative, not {min_count}")
        self.task_name = task_name
        self.bins = bins
        self.min_count = min_count
        self.features = list(features) if features is not None else None
        self.result: dict[str, Any] = {}

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        self.result = {}
        withheld: dict[str, str] = {}

        # pass 1: count, sum, min, max
        width = len(self.features) if self.features is not None else None
        first: dict[str, Weights] = {}
        for result in self._contributions(run, {}, 1, None, withheld):
            counts = result.weights.get("count")
            shape = (width,) if width is not None else np.shape(counts) if counts is not None else ()
            if _accept(run, result, dict.fromkeys(FIRST_PASS, shape), first):
                width = shape[0]  # unless `features` said so, the first good answer sets it
        if not first:
            raise RoundFailed(_nobody(withheld))
        assert width is not None  # `features`, or the first answer kept, set it
        center = _total(first, "sum") / _total(first, "count")
        low = np.min([answer["min"] for answer in first.values()], axis=0)
        high = np.max([answer["max"] for answer in first.values()], axis=0)
        edges = _equal_width_edges(low, high, self.bins)

        # pass 2: squared deviations from the global mean, histograms over shared edges
        again = [client for client in run.live_clients() if client.name in first]
        second: dict[str, Weights] = {}
        shapes = {"sum_sq_dev": (width,), "histogram": (width, self.bins)}
        for result in self._contributions(run, {"mean": center, "edges": edges}, 2, again, withheld):
            _accept(run, result, shapes, second)

        # combine the clients that answered both passes (pass 2 asked only those of pass 1)
        used = [name for name in first if name in second]
        if not used:
            raise RoundFailed(_nobody(withheld))
        first = {name: first[name] for name in used}
        count = _total(first, "count")
        mean = _total(first, "sum") / count
        # deviations were taken from `center`, the mean of everyone in pass 1; moved to the
        # mean of those counted (no change when nobody dropped out), clipped at 0 for rounding
        sq_dev = _total(second, "sum_sq_dev") - count * (mean - center) ** 2
        var = np.maximum(sq_dev / count, 0.0)
        self.result = {
            "features": self.features if self.features is not None else [str(i) for i in range(len(count))],
            "count": count.astype(np.int64),
            "mean": mean,
            "std": np.sqrt(var),
            "var": var,
            "min": np.min([answer["min"] for answer in first.values()], axis=0),
            "max": np.max([answer["max"] for answer in first.values()], axis=0),
            "histogram": _total(second, "histogram").astype(np.int64),
            "edges": edges,
            "withheld": withheld,
            "clients": used,
        }
        run.note("statistics", {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.result.items()})
        return weights

    def _contributions(
        self,
        run: "RoundContext",
        request: Weights,
        step: int,
        clients: "list[ClientInfo] | None",
        withheld: dict[str, str],
    ) -> "Iterator[Result]":
        """Scatter one pass and yield the answers with tensors; note the withheld ones."""
        meta = {names.STATS_PASS: step, names.MIN_COUNT: self.min_count}
        for result in run.scatter(self.task_name, request, clients=clients, meta=meta):
            if result.weights:
                yield result
            else:
                withheld[result.client] = _withheld_reason(result)


def _accept(
    run: "RoundContext", result: "Result", shapes: dict[str, tuple[int, ...]], into: dict[str, Weights]
) -> bool:
    """Check ``result`` against ``shapes`` and keep it in ``into``, or reject it; True if kept."""
    try:
        into[result.client] = _checked(result.weights, shapes)
    except ValueError as exc:
        run.reject(result, exc)
        return False
    return True


def _checked(tensors: Weights, shapes: dict[str, tuple[int, ...]]) -> Weights:
    """The tensors as float64 if they are what a pass answers with, else ValueError saying why."""
    if set(tensors) != set(shapes):
        raise ValueError(f"expected the tensors {', '.join(shapes)}, got {', '.join(tensors)}")
    checked = {key: np.asarray(tensors[key], dtype=np.float64) for key in shapes}
    for key, value in checked.items():
        if value.shape != shapes[key]:
            raise ValueError(f"{key} has shape {value.shape}, expected {shapes[key]}")
        if not np.isfinite(value).all():
            raise ValueError(f"{key} holds NaN or infinite values")
    if "count" in checked and checked["count"].ndim != 1:
        raise ValueError(f"count has shape {checked['count'].shape}; expected one number per feature")
    if "count" in checked and ((checked["count"] < 1) | (checked["count"] % 1 != 0)).any():
        raise ValueError("count must be a whole number of at least 1 per feature")
    if "min" in checked and (checked["min"] > checked["max"]).any():
        raise ValueError("min is above max")
    if "histogram" in checked and ((checked["histogram"] < 0) | (checked["histogram"] % 1 != 0)).any():
        raise ValueError("histogram counts must be whole numbers, not negative")
    if "sum_sq_dev" in checked and (checked["sum_sq_dev"] < 0).any():
        raise ValueError("sum_sq_dev is negative")
    return checked


def _total(answers: dict[str, Weights], key: str) -> np.ndarray:
    return np.sum([answer[key] for answer in answers.values()], axis=0)


def _equal_width_edges(low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges per feature over [low, high]; a constant feature
    gets [value - 0.5, value + 0.5], as ``np.histogram`` does."""
    constant = low == high
    return np.linspace(np.where(constant, low - 0.5, low), np.where(constant, high + 0.5, high), bins + 1, axis=1)


def _withheld_reason(result: "Result") -> str:
    """Why a client sent no tensors, in its own words (cut short: it is shown in tables)."""
    reason = result.meta.get(names.WITHHELD)
    return str(reason)[:200] if reason else "sent no statistics"


def _nobody(withheld: dict[str, str]) -> str:
    reasons = "; ".join(f"{name}: {reason}" for name, reason in withheld.items())
    return "no client contributed statistics" + (f" (withheld: {reasons})" if reasons else "")
