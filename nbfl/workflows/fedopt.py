"""FedOpt: FedAvg's weighted mean, then a server optimizer step instead of adopting it.

The optimizer (``ServerSGD`` with momentum by default, or Adam, Yogi, Adagrad) lives on
this workflow object, so its state carries from round to round and from one
``%fl_round`` to the next as long as the same object is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..aggregators.fedopt import OPTIMIZERS, ServerOptimizer
from ..protocol import names
from ..protocol.weights import Weights
from .registry import register
from .scatter_gather import MAX_WEIGHT, FedAvg

if TYPE_CHECKING:
    from .base import RoundContext


@register("fedopt", optimizer="sgd")
@register("fedadam", optimizer="adam")
@register("fedyogi", optimizer="yogi")
@register("fedadagrad", optimizer="adagrad")
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
        *,
        max_weight: float = MAX_WEIGHT,
        **optimizer_args: Any,
    ):
        super().__init__(task_name, weight_by, task_meta, max_weight=max_weight)
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"unknown server optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
            optimizer = OPTIMIZERS[optimizer](**optimizer_args)
        self.optimizer = optimizer

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        mean = super().round(run, weights, number)
        return self.optimizer.step(weights, mean)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The server optimizer's buffers and step count, for a checkpoint."""
        opt = self.optimizer
        arrays = {f"{name}/{key}": buf for name, slot in opt.state.items() for key, buf in slot.items()}
        return arrays, {"optimizer": opt.name, "steps": opt.steps}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state`."""
        if meta.get("optimizer") != self.optimizer.name:
            raise ValueError(
                f"the checkpoint holds a {meta.get('optimizer')} server optimizer, not {self.optimizer.name}"
            )
        self.optimizer.steps = int(meta.get("steps", 0))
        self.optimizer.state = {}
        for path, buf in arrays.items():
            name, _, key = path.rpartition("/")
            self.optimizer.state.setdefault(name, {})[key] = np.array(buf)
