"""What FedProx adds to a client's torch training loop: the proximal term, whose value
joins the loss (the numpy trainer adds its gradient itself)."""

from __future__ import annotations

from typing import Callable, cast

import torch
from torch import nn


def proximal_term(model: nn.Module, mu: float) -> Callable[[nn.Module], torch.Tensor]:
    """``loss_extra(model) = mu/2 * ||w - w0||^2``, ``w0`` the parameters as they are now
    (call it right after loading the global model)."""
    anchor = [p.detach().clone() for p in model.parameters()]

    def term(current: nn.Module) -> torch.Tensor:
        if mu == 0:
            return torch.zeros((), device=anchor[0].device if anchor else "cpu")
        total = sum(((p - a) ** 2).sum() for p, a in zip(current.parameters(), anchor))
        return 0.5 * mu * cast(torch.Tensor, total)  # sum's start (0) stays only for a model without parameters

    return term
