"""FedOpt: FedAvg's weighted mean, then a server optimizer step instead of adopting it.

The optimizer (``ServerSGD`` with momentum by default, or Adam, Yogi, Adagrad) lives on
this workflow object, so its state carries from round to round and from one
``%fl_round`` to the next as long as the same object is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import names
from ..aggregators.fedopt import OPTIMIZERS, ServerOptimizer
from ..weights import Weights
from .scatter_gather import FedAvg

if TYPE_CHECKING:
    from .base import RoundContext


class FedOpt(FedAvg):
    """``optimizer`` is a :class:`ServerOptimizer` or one of ``sgd``, ``adam``, ``yogi``,
    ``adagrad`` (then ``optimizer_args`` go to its constructor, e.g. ``lr=1.0, momentum=0.6``)."""

    name = "fedopt"

    def __init__(
        self,
        optimizer: ServerOptimizer | str = "sgd",
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict[str, Any] | None = None,
        **optimizer_args: Any,
    ):
        super().__init__(task_name, weight_by, task_meta)
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"unknown server optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
            optimizer = OPTIMIZERS[optimizer](**optimizer_args)
        self.optimizer = optimizer

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        mean = super().round(run, weights, number)
        return self.optimizer.step(weights, mean)
