"""FedAvg with every update's norm bounded at the controller (Sun et al., 2019, "Can You
Really Backdoor Federated Learning?").

A client's update, its model minus the global one, is scaled down to length ``bound``
(the L2 norm over all the model's float tensors together) when it is longer, then the
updates are averaged as FedAvg averages them. One client can then move the global
model by at most ``bound`` times its share of the weight, however large an update it
sends, while honest updates shorter than the bound pass unchanged: a round with none
over it is plain FedAvg. The names of the clients it clipped are in the round's record
(``notes["norm_clip"]``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..aggregators import WeightedMean
from ..protocol import names
from ..protocol.names import DataKind
from ..protocol.weights import UpdateError, Weights, full_weights
from .base import needs_results
from .registry import register
from .scatter_gather import MAX_WEIGHT, FedAvg

if TYPE_CHECKING:
    from .base import RoundContext


@register("norm_clip")
class NormClip(FedAvg):
    """FedAvg whose updates are clipped to L2 norm ``bound`` first (``--option bound=1.0``)."""

    name = "norm_clip"

    def __init__(
        self,
        bound: float = 1.0,
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict[str, Any] | None = None,
        *,
        max_weight: float = MAX_WEIGHT,
    ):
        super().__init__(task_name, weight_by, task_meta, max_weight=max_weight)
        if not 0 < bound < math.inf:
            raise ValueError(f"bound must be a positive finite number, not {bound!r}")
        self.bound = float(bound)

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        mean = WeightedMean(weights)
        clipped: dict[str, float] = {}  # client -> the norm it sent
        for result in run.scatter(self.task_name, weights, meta=self.task_meta):
            try:
                model = full_weights(result.weights, result.kind, weights)
                norm = update_norm(model, weights)
                if norm > self.bound:
                    model = clip(model, weights, self.bound / norm)
                    clipped[result.client] = round(norm, 6)
                mean.accept(model, self.weight_of(result), DataKind.WEIGHTS, owned=True)
            except (UpdateError, ValueError) as exc:
                run.reject(result, exc)
        needs_results(run, mean.count)
        run.note(self.name, {"bound": self.bound, "clipped": clipped})
        return mean.result()


def update_norm(model: Weights, reference: Weights) -> float:
    """The L2 norm of ``model - reference`` over their float tensors, in float64."""
    total = 0.0
    for name, ref in reference.items():
        if ref.dtype.kind == "f":
            diff = model[name].astype(np.float64) - ref
            total += float(np.dot(diff.reshape(-1), diff.reshape(-1)))
    return math.sqrt(total)


def clip(model: Weights, reference: Weights, scale: float) -> Weights:
    """``reference + scale * (model - reference)`` for float tensors; the others as they are."""
    return {
        name: (ref + scale * (model[name].astype(np.float64) - ref)).astype(ref.dtype)
        if ref.dtype.kind == "f"
        else model[name]
        for name, ref in reference.items()
    }
