"""FedAvg: send the global model to every client, average what comes back.

One round reads top to bottom: scatter the task, fold each result into a streaming
weighted mean as it arrives (a bad update is rejected and the client told why),
and fail the round if fewer usable results than the quorum (``min_results``) came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import names
from ..aggregators import WeightedMean
from ..executor import MetaKey
from ..weights import UpdateError, Weights
from .base import needs_results

if TYPE_CHECKING:
    from ..records import Result
    from .base import RoundContext

WEIGHT_KEYS = {"steps": MetaKey.NUM_STEPS_CURRENT_ROUND, "samples": "num_samples"}


class FedAvg:
    """Scatter-gather with a weighted mean (McMahan et al., 2017).

    ``weight_by``: ``"steps"`` (the seed's NUM_STEPS_CURRENT_ROUND), ``"samples"``,
    ``"equal"``, or ``"auto"`` (steps if reported, else samples, else equal).
    """

    name = "fedavg"
    trains = True

    def __init__(self, task_name: str = names.TRAIN, weight_by: str = "auto", task_meta: dict[str, Any] | None = None):
        if weight_by not in ("auto", "equal", *WEIGHT_KEYS):
            raise ValueError(f"weight_by must be auto, equal, steps or samples, not {weight_by!r}")
        self.task_name = task_name
        self.weight_by = weight_by
        self.task_meta = dict(task_meta or {})

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        mean = WeightedMean(weights)
        for result in run.scatter(self.task_name, weights, meta=self.task_meta):
            try:
                mean.accept(result.weights, self.weight_of(result), result.kind, owned=True)
            except (UpdateError, ValueError) as exc:
                run.reject(result, exc)
        needs_results(run, mean.count)
        return mean.result()

    def weight_of(self, result: "Result") -> float:
        if self.weight_by == "equal":
            return 1.0
        keys = list(WEIGHT_KEYS.values()) if self.weight_by == "auto" else [WEIGHT_KEYS[self.weight_by]]
        for key in keys:
            value = result.meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        if self.weight_by == "auto":
            return 1.0
        raise UpdateError(f"the result reports no {keys[0]!r} to weight it by")
