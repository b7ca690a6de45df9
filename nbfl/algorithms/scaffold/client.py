"""SCAFFOLD's client side in numpy: the control variate ``c_i`` and its update.

Both built-in trainers (torch and numpy) and :class:`nbfl.algorithms.scaffold.client_torch.ScaffoldClient`
keep their state here, so the bookkeeping is the same whatever trains, and a
participant without torch can take part in a SCAFFOLD run.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...protocol.weights import Weights, split
from . import DC, RUN, C


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
        name: np.asarray(c_local[name], np.float64)
        - c_global[name]
        + (np.asarray(x[name], np.float64) - y[name]) * scale
        for name in c_global
    }


class ScaffoldState:
    """A client's control variate ``c_i``, kept across the rounds of one SCAFFOLD run.

    :meth:`begin` takes a task's tensors apart and leaves in :attr:`correction` what
    each gradient gets added (``c - c_i``); :meth:`finish` turns the trained weights
    into the result's tensors.
    """

    def __init__(self) -> None:
        self.run_id: Any = None
        self.c_local: Weights = {}
        self.correction: Weights = {}  # c - c_i, float64, per tensor the controller keeps a variate for
        self._c_global: Weights = {}
        self._x: Weights = {}

    def begin(self, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Weights:
        """The model weights to train from. A new run id (a new Scaffold workflow on the
        controller) resets ``c_i`` to zeros."""
        weights, self._c_global = split(tensors, C)
        if meta.get(RUN) != self.run_id or self.c_local.keys() != self._c_global.keys():
            self.run_id = meta.get(RUN)
            self.c_local = {k: np.zeros(v.shape, np.float64) for k, v in self._c_global.items()}
        self._x = {k: np.array(v, copy=True) for k, v in weights.items()}
        self.correction = {k: self._c_global[k] - self.c_local[k] for k in self._c_global}
        return weights

    def finish(self, y: Mapping[str, np.ndarray], steps: int, lr: float) -> Weights:
        """Update ``c_i`` (option II) from the trained weights ``y`` after ``steps`` steps of
        effective learning rate ``lr``; returns the result tensors: ``y - x`` and ``dc_i``."""
        c_new = client_control_update(self.c_local, self._c_global, self._x, y, steps, lr)
        dc = {k: c_new[k] - self.c_local[k] for k in c_new}
        self.c_local = c_new
        dy = {k: np.subtract(y[k], self._x[k]) for k in self._x}
        return {**dy, **{DC + k: v for k, v in dc.items()}}
