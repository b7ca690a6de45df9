"""SCAFFOLD (Karimireddy et al., 2020): control variates that cancel client drift.

The controller keeps a control variate ``c`` (one array per float tensor of the model,
zeros at first); each client keeps its own ``c_i``. A task carries the global model
``x`` and ``c`` (tensors named ``scaffold.c/<name>``, :data:`nbfl.algorithms.scaffold.C`). The client trains with each
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
from typing import TYPE_CHECKING, Any

import numpy as np

from ...aggregators import WeightedMean
from ...protocol import names
from ...protocol.names import DataKind
from ...protocol.weights import UpdateError, Weights, check_update, split
from ...workflows.base import needs_results
from ...workflows.registry import register
from ...workflows.scatter_gather import MAX_WEIGHT, FedAvg
from . import DC, RUN, C

if TYPE_CHECKING:
    from ...workflows.base import RoundContext


@register("scaffold")
class Scaffold(FedAvg):
    """``lr`` is the server learning rate ``lr_g`` (1.0 in the paper's experiments)."""

    name = "scaffold"

    def __init__(
        self,
        lr: float = 1.0,
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict | None = None,
        *,
        max_weight: float = MAX_WEIGHT,
    ):
        super().__init__(task_name, weight_by, task_meta, max_weight=max_weight)
        self.lr = lr
        self.run_id = uuid.uuid4().hex
        self.control: Weights = {}

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        if not self.control:
            self.control = {k: np.zeros(v.shape, np.float64) for k, v in weights.items() if v.dtype.kind == "f"}
        asked = len(run.live_clients())
        task = {**weights, **{C + k: v for k, v in self.control.items()}}
        meta: dict[str, Any] = {**self.task_meta, RUN: self.run_id}
        mean = WeightedMean(weights)
        dc_sum = {k: np.zeros_like(v) for k, v in self.control.items()}
        for result in run.scatter(self.task_name, task, meta=meta):
            dy, dc = split(result.weights, DC)
            try:
                if result.kind != DataKind.WEIGHT_DIFF:
                    raise UpdateError(f"SCAFFOLD needs WEIGHT_DIFF results, got {result.kind}")
                check_update(dc, self.control)
                mean.accept(dy, self.weight_of(result), DataKind.WEIGHT_DIFF, owned=True)
            except (UpdateError, ValueError) as exc:
                run.reject(result, exc)
                continue
            for k, acc in dc_sum.items():
                acc += dc[k]
        needs_results(run, mean.count)
        for k, acc in dc_sum.items():
            self.control[k] += acc / max(asked, mean.count)
        averaged = mean.result()  # x + mean(dy)
        if self.lr == 1.0:
            return averaged
        return {
            k: (g + self.lr * (averaged[k] - g)).astype(g.dtype) if g.dtype.kind == "f" else averaged[k]
            for k, g in weights.items()
        }

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The server's control variate and the run id clients key theirs by, for a checkpoint."""
        return dict(self.control), {"run_id": self.run_id}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state`: the clients still hold their own
        control variates under the same run id."""
        self.control = {k: np.array(v, np.float64) for k, v in arrays.items()}
        self.run_id = str(meta.get("run_id", self.run_id))
