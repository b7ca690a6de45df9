"""SCAFFOLD (Karimireddy et al., 2020): control variates that cancel client drift.

The controller keeps a control variate ``c`` (one array per float tensor of the model,
zeros at first); each client keeps its own ``c_i``. A task carries the global model
``x`` and ``c`` (tensors named ``scaffold.c/<name>``). The client trains with each
gradient corrected by ``c - c_i``, takes ``K`` steps at learning rate ``lr`` to reach
``y_i``, and updates its variate by option II of the paper::

    c_i+ = c_i - c + (x - y_i) / (K * lr)

It returns ``dy_i = y_i - x`` (WEIGHT_DIFF) and ``dc_i = c_i+ - c_i``
(``scaffold.dc/<name>``). With ``N`` clients asked this round, the controller sets::

    x <- x + lr_g * mean_i(dy_i)            (weighted like FedAvg)
    c <- c + (1 / N) * sum_i(dc_i)

``c`` lives on this workflow object, so it carries over rounds while the object does.
A run id in the task meta tells clients when a new run starts, so they reset ``c_i``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..aggregators import WeightedMean
from ..executor import DataKind
from ..weights import UpdateError, Weights, check_update
from .scatter_gather import FedAvg, RoundFailed

if TYPE_CHECKING:
    from ..controller import Controller

C_PREFIX = "scaffold.c/"  # the controller's variate, sent with the task
DC_PREFIX = "scaffold.dc/"  # a client's change of its variate, sent with the result
RUN_KEY = "scaffold_run"


def client_control_update(
    c_local: Mapping[str, np.ndarray],
    c_global: Mapping[str, np.ndarray],
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    steps: int,
    lr: float,
) -> Weights:
    """Option II: ``c_i+ = c_i - c + (x - y) / (steps * lr)`` per tensor, in float64."""
    if steps < 1 or not lr > 0:
        raise ValueError(f"need at least one step and a positive learning rate, got {steps} and {lr}")
    scale = 1.0 / (steps * lr)
    return {
        name: np.asarray(c_local[name], np.float64) - c_global[name] + (np.asarray(x[name], np.float64) - y[name]) * scale
        for name in c_global
    }


def split(tensors: Mapping[str, np.ndarray], prefix: str) -> tuple[Weights, Weights]:
    """``(the rest, the tensors under prefix with the prefix removed)``."""
    rest = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    under = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return rest, under


class Scaffold(FedAvg):
    """``lr`` is the server learning rate ``lr_g`` (1.0 in the paper's experiments)."""

    name = "scaffold"

    def __init__(self, lr: float = 1.0, task_name: str = "train", weight_by: str = "auto", task_meta: dict | None = None):
        super().__init__(task_name, weight_by, task_meta)
        self.lr = lr
        self.run_id = uuid.uuid4().hex
        self.control: Weights = {}

    def round(self, ctl: "Controller", weights: Weights, number: int) -> Weights:
        if not self.control:
            self.control = {k: np.zeros(v.shape, np.float64) for k, v in weights.items() if v.dtype.kind == "f"}
        asked = len(ctl.live_clients())
        task = {**weights, **{C_PREFIX + k: v for k, v in self.control.items()}}
        meta: dict[str, Any] = {**self.task_meta, RUN_KEY: self.run_id}
        mean = WeightedMean(weights)
        dc_sum = {k: np.zeros_like(v) for k, v in self.control.items()}
        for result in ctl.scatter(self.task_name, task, meta=meta):
            dy, dc = split(result.weights, DC_PREFIX)
            try:
                if result.kind != DataKind.WEIGHT_DIFF:
                    raise UpdateError(f"SCAFFOLD needs WEIGHT_DIFF results, got {result.kind}")
                check_update(dc, self.control)
                mean.accept(dy, self.weight_of(result), DataKind.WEIGHT_DIFF, owned=True)
            except (UpdateError, ValueError) as exc:
                ctl.reject(result, exc)
                continue
            for k, acc in dc_sum.items():
                acc += dc[k]
        if mean.count < max(1, ctl.min_clients):
            raise RoundFailed(f"{mean.count} usable results, {ctl.min_clients} needed")
        for k, acc in dc_sum.items():
            self.control[k] += acc / max(asked, mean.count)
        averaged = mean.result()  # x + mean(dy)
        if self.lr == 1.0:
            return averaged
        return {
            k: (g + self.lr * (averaged[k] - g)).astype(g.dtype) if g.dtype.kind == "f" else averaged[k]
            for k, g in weights.items()
        }
