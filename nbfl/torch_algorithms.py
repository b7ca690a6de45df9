"""What FedProx and SCAFFOLD add to a client's torch training loop.

Any training loop can use these two helpers; the built-in
:class:`~nbfl.trainers.ArrayTrainer` does, driven by the task meta::

    prox = proximal_term(model, mu)           # snapshot of the global model
    scaffold = ScaffoldClient.for_task(...)   # or None
    for xb, yb in batches:
        loss = loss_fn(model(xb), yb) + prox(model)
        loss.backward()
        if scaffold: scaffold.correct(model)  # grad += c - c_i
        opt.step()
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from . import names
from .torch_adapter import get_weights
from .weights import Weights, split


def proximal_term(model: nn.Module, mu: float) -> Callable[[nn.Module], torch.Tensor]:
    """``loss_extra(model) = mu/2 * ||w - w0||^2``, ``w0`` the parameters as they are now
    (call it right after loading the global model)."""
    anchor = [p.detach().clone() for p in model.parameters()]

    def term(current: nn.Module) -> torch.Tensor:
        if mu == 0:
            return torch.zeros((), device=anchor[0].device if anchor else "cpu")
        total = sum(((p - a) ** 2).sum() for p, a in zip(current.parameters(), anchor))
        return 0.5 * mu * total

    return term


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


class ScaffoldClient:
    """A client's SCAFFOLD state: its control variate ``c_i``, kept across rounds of one run."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.c_local: Weights = {}
        self._c_global: Weights = {}
        self._x: Weights = {}
        self._corrections: dict[str, torch.Tensor] = {}

    def begin(self, model: nn.Module, tensors: Mapping[str, np.ndarray], meta: Mapping) -> Weights:
        """Take a SCAFFOLD task's tensors apart; returns the model weights to load.

        A new run id (a new Scaffold workflow on the controller) resets ``c_i`` to zeros.
        """
        weights, self._c_global = split(tensors, names.SCAFFOLD_C)
        if meta.get(names.SCAFFOLD_RUN) != self.run_id or self.c_local.keys() != self._c_global.keys():
            self.run_id = meta.get(names.SCAFFOLD_RUN)
            self.c_local = {k: np.zeros(v.shape, np.float64) for k, v in self._c_global.items()}
        self._x = {k: np.array(v, copy=True) for k, v in weights.items()}
        params = dict(model.named_parameters())
        self._corrections = {
            k: torch.as_tensor(self._c_global[k] - self.c_local[k], dtype=params[k].dtype, device=params[k].device)
            for k in self._c_global
            if k in params
        }
        return weights

    def correct(self, model: nn.Module) -> None:
        """After ``backward()``, before ``step()``: each gradient becomes ``g - c_i + c``."""
        for name, p in model.named_parameters():
            if p.grad is not None and name in self._corrections:
                p.grad.add_(self._corrections[name])

    def finish(self, model: nn.Module, steps: int, lr: float) -> Weights:
        """Update ``c_i`` (option II) and return the result tensors: ``y - x`` and ``dc_i``."""
        y = get_weights(model)
        c_new = client_control_update(self.c_local, self._c_global, self._x, y, steps, lr)
        dc = {k: c_new[k] - self.c_local[k] for k in c_new}
        self.c_local = c_new
        dy = {k: np.subtract(y[k], self._x[k]) for k in self._x}
        return {**dy, **{names.SCAFFOLD_DC + k: v for k, v in dc.items()}}
