"""Record-level differential privacy on a client: DP-SGD through Opacus (optional extra).

Where the ``dp`` filter protects a site's whole update from the controller, DP-SGD
protects each *record* in the site's data from everyone who later sees the model:
every example's gradient is clipped to ``max_grad_norm`` and Gaussian noise of
``noise_multiplier * max_grad_norm`` is added to each batch's sum (Abadi et al., 2016),
with Poisson-sampled batches. Opacus does the per-example work; the epsilon is
composed across rounds here, with :class:`~nbfl.filters.accountant.PrivacyAccountant`
(sample rate ``batch_size / samples``, one step per batch), and reported by the
trainer as the metric ``dp_sgd_epsilon``. Install with ``pip install "nbfl-jupyter[dp]"``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..filters.accountant import PrivacyAccountant


class DPSGD:
    """DP-SGD settings of one client, and the privacy it has spent so far."""

    def __init__(self, noise_multiplier: float = 1.0, max_grad_norm: float = 1.0, delta: float = 1e-5):
        if not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {max_grad_norm}")
        self.noise_multiplier, self.max_grad_norm, self.delta = noise_multiplier, max_grad_norm, delta
        self.accountant: PrivacyAccountant | None = None

    def epochs(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: torch.utils.data.TensorDataset,
        batch_size: int,
        epochs: int,
        step: Callable[[nn.Module, torch.Tensor, torch.Tensor], float],
        stop: Callable[[], bool],
    ) -> tuple[int, list[float]]:
        """Run ``epochs`` of DP-SGD with ``step(model, x, y) -> loss`` (which calls backward);
        returns (steps taken, losses of the last epoch). ``model``'s own parameters change."""
        try:
            from opacus import PrivacyEngine
        except ImportError:
            raise ImportError('DP-SGD needs Opacus: pip install "nbfl-jupyter[dp]"') from None
        if self.accountant is None:
            self.accountant = PrivacyAccountant(self.noise_multiplier, min(1.0, batch_size / len(data)), self.delta)
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
        private, optimizer, loader = PrivacyEngine(accountant="rdp").make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            poisson_sampling=True,
        )
        losses: list[float]
        steps, losses = 0, []
        try:
            for _ in range(epochs):
                losses = []
                for xb, yb in loader:
                    if stop():
                        return steps, losses
                    if len(yb) == 0:  # Poisson sampling can draw an empty batch: still a step
                        steps += 1
                        continue
                    optimizer.zero_grad()
                    losses.append(step(private, xb, yb))
                    optimizer.step()
                    steps += 1
        finally:
            private.remove_hooks()  # the module is wrapped afresh next round
            self.accountant.step(steps)
        return steps, losses

    def spent(self) -> dict[str, Any]:
        """``{"dp_sgd_epsilon": ..., "dp_sgd_delta": ...}`` for the result's metrics."""
        epsilon = self.accountant.epsilon() if self.accountant is not None else 0.0
        return {"dp_sgd_epsilon": epsilon, "dp_sgd_delta": self.delta}
