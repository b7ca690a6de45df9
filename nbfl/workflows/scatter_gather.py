"""FedAvg: send the global model to every client, average what comes back.

One round reads top to bottom: scatter the task, fold each result into a streaming
weighted mean as it arrives (a bad update is rejected and the client told why),
and fail the round if fewer usable results than the quorum (``min_results``) came.
"""

from __future__ import annotations

import math
import reprlib
from typing import TYPE_CHECKING, Any

from ..aggregators import WeightedMean
from ..protocol import names
from ..protocol.names import MetaKey
from ..protocol.weights import UpdateError, Weights
from .base import needs_results
from .registry import register

if TYPE_CHECKING:
    from ..protocol.records import Result
    from .base import RoundContext

WEIGHT_KEYS = {"steps": MetaKey.NUM_STEPS_CURRENT_ROUND, "samples": "num_samples"}
# The largest step or sample count a result may report. A client sets its own weight, so
# without a bound one participant could claim 1e300 steps and own the average (or make
# it overflow); no honest client takes a billion steps or holds a billion samples per round.
MAX_WEIGHT = 1e9


@register("fedavg")
class FedAvg:
    """Scatter-gather with a weighted mean (McMahan et al., 2017).

    ``weight_by``: ``"steps"`` (the seed's NUM_STEPS_CURRENT_ROUND), ``"samples"``,
    ``"equal"``, or ``"auto"`` (steps if reported, else samples, else equal).
    A reported count must be a number above 0 and at most ``max_weight``; a result
    with any other is rejected.
    """

    name = "fedavg"
    trains = True

    def __init__(
        self,
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict[str, Any] | None = None,
        *,
        max_weight: float = MAX_WEIGHT,
    ):
        if weight_by not in ("auto", "equal", *WEIGHT_KEYS):
            raise ValueError(f"weight_by must be auto, equal, steps or samples, not {weight_by!r}")
        if not 0 < max_weight < math.inf:
            raise ValueError(f"max_weight must be a positive finite number, not {max_weight!r}")
        self.task_name = task_name
        self.weight_by = weight_by
        self.task_meta = dict(task_meta or {})
        self.max_weight = float(max_weight)

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
        """The aggregation weight ``result`` reports; :class:`UpdateError` (the result is
        rejected) if the count it names is not a number in (0, ``max_weight``]."""
        if self.weight_by == "equal":
            return 1.0
        keys = list(WEIGHT_KEYS.values()) if self.weight_by == "auto" else [WEIGHT_KEYS[self.weight_by]]
        for key in keys:
            value = result.meta.get(key)
            if value is None:
                continue
            # int and float only (JSON's numbers), bool excluded; the comparison is exact for
            # any int and false for NaN, so nothing overflows on the way to float()
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= self.max_weight:
                raise UpdateError(
                    f"{key} = {reprlib.repr(value)} cannot weight an update: it must be a number above 0 "
                    f"and at most {self.max_weight:g}"
                )
            return float(value)
        if self.weight_by == "auto":
            return 1.0
        raise UpdateError(f"the result reports no {keys[0]!r} to weight it by")
