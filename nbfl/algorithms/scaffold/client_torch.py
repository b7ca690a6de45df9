"""What SCAFFOLD adds to a client's torch training loop (FedProx's term is
:func:`nbfl.algorithms.fedprox.client.proximal_term`).

Any training loop can use these helpers; the built-in
:class:`~nbfl.participant.trainers.ArrayTrainer` does, driven by the task meta::

    prox = proximal_term(model, mu)           # snapshot of the global model
    scaffold = ScaffoldClient()               # kept across rounds
    weights = scaffold.begin(model, tensors, meta)  # load these into the model
    for xb, yb in batches:
        loss = loss_fn(model(xb), yb) + prox(model)
        loss.backward()
        scaffold.correct(model)               # grad += c - c_i
        opt.step()
    result = scaffold.finish(model, steps, lr)

The variates themselves are numpy (:mod:`nbfl.algorithms.scaffold.client`), shared with the
numpy trainer; only the gradients are touched here.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ...protocol.torch_adapter import get_weights
from ...protocol.weights import Weights
from .client import ScaffoldState


def gradient_correction(model: nn.Module, correction: Mapping[str, np.ndarray]) -> Callable[[nn.Module], None]:
    """``correct(model)`` adds ``correction`` (SCAFFOLD's ``c - c_i``, by parameter name) to
    each gradient; call it after ``backward()``, before ``step()``. The tensors are made
    once here, in each parameter's dtype and on its device."""
    params = dict(model.named_parameters())
    tensors = {
        k: torch.as_tensor(v, dtype=params[k].dtype, device=params[k].device)
        for k, v in correction.items()
        if k in params
    }

    def correct(current: nn.Module) -> None:
        for name, p in current.named_parameters():
            if p.grad is not None and name in tensors:
                p.grad.add_(tensors[name])

    return correct


class ScaffoldClient:
    """A client's SCAFFOLD state for a torch loop: :class:`~nbfl.algorithms.scaffold.client.ScaffoldState`
    with the gradients' correction as torch tensors."""

    def __init__(self) -> None:
        self.state = ScaffoldState()
        self._correct: Callable[[nn.Module], None] = lambda model: None

    @property
    def c_local(self) -> Weights:
        return self.state.c_local

    def begin(self, model: nn.Module, tensors: Mapping[str, np.ndarray], meta: Mapping) -> Weights:
        """Take a SCAFFOLD task's tensors apart; returns the model weights to load."""
        weights = self.state.begin(tensors, meta)
        self._correct = gradient_correction(model, self.state.correction)
        return weights

    def correct(self, model: nn.Module) -> None:
        """After ``backward()``, before ``step()``: each gradient becomes ``g - c_i + c``."""
        self._correct(model)

    def finish(self, model: nn.Module, steps: int, lr: float) -> Weights:
        """Update ``c_i`` (option II) and return the result tensors: ``y - x`` and ``dc_i``."""
        return self.state.finish(get_weights(model), steps, lr)
