"""FedProx (Li et al., 2020): FedAvg whose clients add ``mu/2 * ||w - w_global||^2`` to their loss.

The controller's part is only to say ``mu`` in every task's meta (:data:`nbfl.algorithms.fedprox.MU`);
the proximal term itself is computed by the client's training loop
(:func:`nbfl.algorithms.fedprox.client.proximal_term` in a torch loop and the built-in torch
trainer; its gradient in :class:`nbfl.participant.numpy_trainer.NumpyTrainer`), which
keeps heterogeneous clients from drifting far from the global model.
"""

from __future__ import annotations

from typing import Any

from ...protocol import names
from ...workflows.registry import register
from ...workflows.scatter_gather import MAX_WEIGHT, FedAvg
from . import MU


@register("fedprox")
class FedProx(FedAvg):
    name = "fedprox"

    def __init__(
        self,
        mu: float = 0.01,
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict[str, Any] | None = None,
        *,
        max_weight: float = MAX_WEIGHT,
    ):
        if not mu >= 0:
            raise ValueError(f"mu must be zero or positive, got {mu}")
        super().__init__(task_name, weight_by, {**(task_meta or {}), MU: float(mu)}, max_weight=max_weight)
        self.mu = float(mu)
