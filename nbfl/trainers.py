"""Built-in torch trainers: an Executor that trains any classifier on in-memory arrays.

Used by the demo, ``nbfl client`` and spawned clients. It trains on CUDA when present
and says which device it used, so the controller's client table can show it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from .executor import DXO, AppConstants, DataKind, Executor, FLContext, MetaKey, ReturnCode, Shareable, Signal
from .executor import from_shareable, make_reply
from .torch_adapter import device_name, get_weights, set_weights
from .weights import Weights


class ArrayTrainer(Executor):
    """Local SGD epochs on ``(x, y)``; answers ``train`` with WEIGHTS and ``validate`` with METRICS."""

    def __init__(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int = 1,
        lr: float = 0.05,
        batch_size: int = 32,
        momentum: float = 0.9,
        seed: int = 0,
        device: str | None = None,
    ):
        super().__init__()
        self.device = device or device_name()
        self.model = model.to(self.device)
        self.x = torch.as_tensor(np.asarray(x, np.float32))
        self.y = torch.as_tensor(np.asarray(y, np.int64))
        self.epochs, self.lr, self.batch_size, self.momentum = epochs, lr, batch_size, momentum
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def samples(self) -> int:
        return len(self.y)

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        dxo = from_shareable(shareable)
        if dxo.data_kind != DataKind.WEIGHTS:
            return make_reply(ReturnCode.BAD_TASK_DATA)
        set_weights(self.model, dxo.data)
        if task_name == AppConstants.TASK_TRAIN:
            steps, loss = self.train(abort_signal)
            if abort_signal.triggered:
                return make_reply(ReturnCode.TASK_ABORTED)
            meta = {
                MetaKey.NUM_STEPS_CURRENT_ROUND: steps,
                "num_samples": self.samples,
                "metrics": {"train_loss": loss, **self.evaluate(self.x, self.y, prefix="local_")},
            }
            return DXO(DataKind.WEIGHTS, get_weights(self.model), meta).to_shareable()
        if task_name == AppConstants.TASK_VALIDATION:
            return DXO(DataKind.METRICS, {}, {"metrics": self.evaluate(self.x, self.y)}).to_shareable()
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def train(self, abort_signal: Signal) -> tuple[int, float]:
        """Run the local epochs; returns (steps taken, mean loss of the last epoch)."""
        opt = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=self.momentum)
        loss_fn = nn.CrossEntropyLoss()
        self.model.train()
        steps, losses = 0, []
        for _ in range(self.epochs):
            losses = []
            order = torch.randperm(len(self.y), generator=self.generator)
            for start in range(0, len(order), self.batch_size):
                if abort_signal.triggered:
                    return steps, float("nan")
                idx = order[start : start + self.batch_size]
                xb, yb = self.x[idx].to(self.device), self.y[idx].to(self.device)
                opt.zero_grad()
                loss = loss_fn(self.model(xb), yb)
                loss.backward()
                opt.step()
                steps += 1
                losses.append(loss.item())
        return steps, float(np.mean(losses)) if losses else 0.0

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, prefix: str = "") -> dict[str, float]:
        return evaluate_model(self.model, x, y, self.device, prefix)


@torch.no_grad()
def evaluate_model(model: nn.Module, x: Any, y: Any, device: str = "cpu", prefix: str = "") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``."""
    model.eval()
    x = torch.as_tensor(np.asarray(x, np.float32)).to(device)
    y = torch.as_tensor(np.asarray(y, np.int64)).to(device)
    logits = model(x)
    return {
        f"{prefix}accuracy": float((logits.argmax(1) == y).float().mean()),
        f"{prefix}loss": float(nn.functional.cross_entropy(logits, y)),
    }


def evaluator(model: nn.Module, x: np.ndarray, y: np.ndarray) -> Callable[[Mapping[str, np.ndarray]], dict[str, float]]:
    """A controller ``evaluate`` callback: load the global weights into ``model`` and test it."""

    def evaluate(weights: Weights) -> dict[str, float]:
        set_weights(model, weights)
        return evaluate_model(model, x, y, next(model.parameters()).device.type)

    return evaluate
