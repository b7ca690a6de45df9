"""The small networks the demo, notebooks and tests use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DigitsMLP(nn.Module):
    """64 -> hidden -> 10 for scikit-learn's 8x8 digits; ~97% when trained centrally."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))
